"""``metarl-bench sweep``: run a grid of runs in parallel, resumably, under one MLflow parent run.

The driver is the only process that writes to the tracking store. For every job it starts, it
creates a child run (RUNNING, tagged ``mlflow.parentRunId``); the job trains in a worker (a local
process or a Ray task) and returns its metrics and artifacts; the driver logs them and marks the
child FINISHED or FAILED. Parallel workers never touch the sqlite file, so they cannot lock it.

Resume: a run's identity is the hash of its resolved config. A new invocation skips hashes that
already have a FINISHED child in the experiment and runs the rest. A driver records its host, pid
and a heartbeat on its parent run; a parent still RUNNING whose driver is gone (``kill -9``) is
marked KILLED, with its RUNNING children, before the rerun starts. Its workers have exited on their
own, and nothing of theirs was ever marked FINISHED.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from benchmark.launchers import Launcher, check_launcher, make_launcher
from benchmark.progress import SweepProgress
from benchmark.sweep_config import Sweep, load_sweep
from benchmark.tracking import ensure_experiment, git_tags, pid_running
from benchmark.worker import Job
from tasks import ConfigError

HEARTBEAT_SECONDS = 30.0
STALE_AFTER_SECONDS = 300.0
ROLE, SWEEP, HOST, PID, BEAT = (
    "metarl.role",
    "metarl.sweep",
    "metarl.host",
    "metarl.pid",
    "metarl.heartbeat",
)
GRID_ARTIFACT = "sweep/grid.json"
EXIT_FAILED_RUNS, EXIT_INTERRUPTED = 1, 130


def sweep_command(
    source: str,
    overrides: list[str],
    launcher: str,
    workers: int | None,
    tracking_uri: str,
    ray_address: str | None = None,
    results_dir: Path = Path("results"),
    started: Launcher | None = None,
) -> int:
    """Validate a sweep, run what is not finished yet, then print and write its table.

    Args:
        source: a built-in sweep name or a YAML path.
        overrides: ``key=value`` (sweep keys or run keys for every run).
        launcher: ``local`` or ``ray``.
        workers: parallel runs (default: the cores, or the Ray cluster's CPUs).
        tracking_uri: the MLflow store.
        ray_address: a Ray cluster to join (Ray only).
        results_dir: where ``<name>.md``, ``<name>.csv`` and the plots go.
        started: a launcher already started by the caller, used instead of making one (the
            caller closes it).

    Returns:
        0 when every run finished, 1 when some failed, 130 when interrupted.
    """
    check_launcher(launcher, workers, ray_address)
    sweep = load_sweep(source, overrides)
    driver = SweepDriver(sweep, tracking_uri)
    todo = driver.prepare()
    status = driver.execute(todo, lambda: started or make_launcher(launcher, workers, ray_address))
    if status == EXIT_INTERRUPTED:
        return status
    from benchmark.table import table_command

    table_command(sweep.experiment, None, "markdown", None, tracking_uri, results_dir)
    return status


class SweepDriver:
    """Creates the parent and child runs, dispatches jobs and records their results.

    Args:
        sweep: the validated sweep.
        tracking_uri: the MLflow store.
    """

    def __init__(self, sweep: Sweep, tracking_uri: str):
        self.sweep = sweep
        self.client = MlflowClient(tracking_uri)
        self.tags = git_tags()
        self.experiment_id = ensure_experiment(tracking_uri, sweep.experiment)
        self.parent_id = ""
        self.last_beat = 0.0
        self.open_runs: set[str] = set()
        """Child runs created and not yet terminated (KILLED if the driver is interrupted)."""

    def prepare(self) -> list[Job]:
        """Reap dead drivers' runs, then return the jobs without a FINISHED run."""
        reap_dead_drivers(self.client, self.experiment_id, self.sweep.name)
        finished = {run.data.tags.get("config_hash") for run in self._children("FINISHED")}
        todo = [job for job in self.sweep.jobs if job.config_hash not in finished]
        # Long runs first: training before the quick classical evaluations fills the workers.
        todo.sort(key=lambda job: job.kind != "learned")
        skipped = len(self.sweep.jobs) - len(todo)
        print(
            f"sweep '{self.sweep.name}': {len(self.sweep.jobs)} runs in experiment "
            f"'{self.sweep.experiment}'; {skipped} already finished, {len(todo)} to run",
            file=sys.stderr,
        )
        self._start_parent(len(todo), skipped)
        return todo

    def execute(self, todo: list[Job], make: Any) -> int:
        """Run ``todo`` through a launcher; return the exit status (0, 1 or 130).

        Args:
            todo: the jobs without a FINISHED run.
            make: a callable that starts the launcher (called only if there is work).
        """
        status, code, cancel = "FAILED", EXIT_FAILED_RUNS, True
        launcher = None
        try:
            failed = 0
            if todo:
                launcher = make()
                print(f"running on {launcher.description}", file=sys.stderr)
                failed = self._loop(launcher, todo)
            status, code = ("FAILED", EXIT_FAILED_RUNS) if failed else ("FINISHED", 0)
            cancel = False
        except KeyboardInterrupt:
            status, code = "KILLED", EXIT_INTERRUPTED
            print("interrupted: running jobs were stopped and marked KILLED", file=sys.stderr)
        finally:  # on an error too: stop the workers, and the parent run is not FINISHED
            if launcher is not None:
                launcher.close(cancel=cancel)
            self.client.set_terminated(self.parent_id, status)
        return code

    def _loop(self, launcher: Launcher, todo: list[Job]) -> int:
        pending: deque[Job] = deque(todo)
        inflight: dict[Any, tuple[Job, str]] = {}
        failed = 0
        with SweepProgress(self.sweep.name, len(todo)) as progress:
            try:
                while pending or inflight:
                    while pending and self._fits(pending[0], inflight, launcher.slots):
                        job = pending.popleft()
                        run_id = self._start_child(job)
                        inflight[launcher.submit(job)] = (job, run_id)
                    for handle in launcher.wait(list(inflight), HEARTBEAT_SECONDS):
                        job, run_id = inflight.pop(handle)
                        record = launcher.result(handle)
                        self._record(job, run_id, record)
                        failed += record["status"] != "FINISHED"
                        progress.finished(job, record)
                    self._heartbeat()
            except BaseException:
                for run_id in sorted(self.open_runs):
                    self.client.set_terminated(run_id, "KILLED")
                raise
        return failed

    @staticmethod
    def _fits(job: Job, inflight: dict[Any, tuple[Job, str]], slots: int) -> bool:
        used = sum(min(other.cpus, slots) for other, _ in inflight.values())
        return used + min(job.cpus, slots) <= slots

    def _children(self, status: str) -> list[Any]:
        query = f"tags.`{ROLE}` = 'child' and attributes.status = '{status}'"
        return search_all(self.client, self.experiment_id, query)

    def _start_parent(self, to_run: int, skipped: int) -> None:
        tags = {**self.tags, ROLE: "parent", SWEEP: self.sweep.name, HOST: socket.gethostname()}
        tags.update({PID: str(os.getpid()), BEAT: str(time.time())})
        tags.update({"metarl.to_run": str(to_run), "metarl.skipped": str(skipped)})
        run = self.client.create_run(
            self.experiment_id, run_name=f"sweep {self.sweep.name}", tags=tags
        )
        self.parent_id = run.info.run_id
        self.last_beat = time.time()
        grid = [
            {"config_hash": job.config_hash, "kind": job.kind, "name": job.name, "task": job.task}
            | {"task_params": job.task_params, "seed": job.seed}
            for job in self.sweep.jobs
        ]
        self.client.log_dict(self.parent_id, grid, GRID_ARTIFACT)
        self.client.log_dict(self.parent_id, self.sweep.resolved, "sweep/sweep.yaml")

    def _start_child(self, job: Job) -> str:
        tags = {**self.tags, "mlflow.parentRunId": self.parent_id, ROLE: "child"}
        tags.update({SWEEP: self.sweep.name, "config_hash": job.config_hash, "kind": job.kind})
        tags.update({"algorithm": job.name, "task": job.task, "setting": job.setting})
        run = self.client.create_run(self.experiment_id, run_name=job.label, tags=tags)
        self.open_runs.add(run.info.run_id)
        params = [Param(key, _param_value(value)) for key, value in job.params.items()]
        for start in range(0, len(params), 100):
            self.client.log_batch(run.info.run_id, params=params[start : start + 100])
        return run.info.run_id

    def _record(self, job: Job, run_id: str, record: dict[str, Any]) -> None:
        tags = [RunTag("metarl.worker", str(record.get("worker", "?")))]
        tags.append(RunTag("metarl.seconds", f"{record.get('seconds', float('nan')):.1f}"))
        if record["status"] != "FINISHED":
            tags.append(RunTag("metarl.error", str(record.get("error", "unknown error"))[:4000]))
            self.client.log_batch(run_id, tags=tags)
            if record.get("traceback"):
                self.client.log_text(run_id, record["traceback"], "error.txt")
            self.client.set_terminated(run_id, "FAILED")
            self.open_runs.discard(run_id)
            return
        extra = record.get("extra_params", {})
        params = [Param(key, _param_value(value)) for key, value in extra.items()]
        self.client.log_batch(run_id, params=params, tags=tags)
        metrics = [Metric(k, v, stamp, step) for k, v, step, stamp in record["metrics"]]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[start : start + 1000])
        with tempfile.TemporaryDirectory() as tmp:
            for relative, payload in record["artifacts"].items():
                path = Path(tmp) / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(payload)
            self.client.log_artifacts(run_id, tmp)
        self.client.set_terminated(run_id, "FINISHED")
        self.open_runs.discard(run_id)

    def _heartbeat(self) -> None:
        if time.time() - self.last_beat >= HEARTBEAT_SECONDS:
            self.last_beat = time.time()
            self.client.set_tag(self.parent_id, BEAT, str(self.last_beat))


def reap_dead_drivers(client: MlflowClient, experiment_id: str, sweep_name: str) -> int:
    """Mark RUNNING parents whose driver is gone, and RUNNING children of no live parent, KILLED.

    A live driver of the same sweep is refused (two drivers would run the same jobs twice).

    Args:
        client: the tracking client.
        experiment_id: the sweep's experiment.
        sweep_name: the sweep about to run.

    Returns:
        the number of child runs marked KILLED.
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


def _param_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, list | dict) else str(value)
