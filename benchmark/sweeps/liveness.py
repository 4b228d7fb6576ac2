"""Which sweep drivers still run, and what becomes of the runs of those that died.

A driver records its host, pid and a heartbeat on its parent run. A parent still RUNNING whose
driver is gone (``kill -9``) is marked KILLED, with its RUNNING children, before a rerun starts; a
live driver of the same sweep is refused.
"""

from __future__ import annotations

import socket
import sys
import time
from typing import Any

from mlflow.tracking import MlflowClient

from benchmark.run.tracking import BEAT, HOST, PID, ROLE, SWEEP, pid_running
from tasks import ConfigError

STALE_AFTER_SECONDS = 300.0
"""A parent whose heartbeat is older than this has no live driver, wherever it ran."""


def check_drivers(
    client: MlflowClient, experiment_id: str, sweep_name: str
) -> tuple[list[str], list[str]]:
    """The RUNNING parent runs whose driver lives and those whose driver is gone.

    A live driver of the same sweep is refused (two drivers would run the same jobs twice).

    Args:
        client: the tracking client.
        experiment_id: the sweep's experiment.
        sweep_name: the sweep about to run.

    Returns:
        the live parents' run ids and the dead ones'.
    """
    running = f"tags.`{ROLE}` = 'parent' and attributes.status = 'RUNNING'"
    live, dead = [], []
    for parent in search_all(client, experiment_id, running):
        tags = parent.data.tags
        if not driver_alive(tags):
            dead.append(parent.info.run_id)
        elif tags.get(SWEEP) == sweep_name:
            raise ConfigError(
                f"sweep '{sweep_name}' is already running (pid {tags.get(PID)} on "
                f"{tags.get(HOST)}, parent run {parent.info.run_id}); wait for it or stop it"
            )
        else:
            live.append(parent.info.run_id)
    return live, dead


def reap_dead_drivers(
    client: MlflowClient, experiment_id: str, live: list[str], dead: list[str]
) -> int:
    """Mark the parents of dead drivers, and RUNNING children of no live parent, KILLED.

    Args:
        client: the tracking client.
        experiment_id: the sweep's experiment.
        live: the parents whose driver lives (from :func:`check_drivers`).
        dead: the parents whose driver is gone.

    Returns:
        the number of child runs marked KILLED.
    """
    killed = 0
    orphans = f"tags.`{ROLE}` = 'child' and attributes.status = 'RUNNING'"
    for child in search_all(client, experiment_id, orphans):
        if child.data.tags.get("mlflow.parentRunId") not in live:
            client.set_tag(child.info.run_id, "metarl.note", "its sweep driver died")
            client.set_terminated(child.info.run_id, "KILLED")
            killed += 1
    for run_id in dead:
        client.set_terminated(run_id, "KILLED")
    if killed:
        print(f"marked {killed} runs of a dead sweep driver KILLED", file=sys.stderr)
    return killed


def driver_alive(tags: dict[str, str]) -> bool:
    """Whether the driver that owns a parent run still runs (pid on this host, else heartbeat).

    Args:
        tags: the parent run's tags.
    """
    beat_age = time.time() - float(tags.get(BEAT, 0) or 0)
    if beat_age > STALE_AFTER_SECONDS:
        return False
    if tags.get(HOST) != socket.gethostname():
        return True
    return pid_running(int(tags.get(PID, 0) or 0))


def search_all(client: MlflowClient, experiment_id: str, query: str) -> list[Any]:
    """Every run of ``experiment_id`` matching ``query`` (all pages).

    Args:
        client: the tracking client.
        experiment_id: one experiment.
        query: an MLflow search filter.
    """
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], query, max_results=5000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs
