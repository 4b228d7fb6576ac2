"""Sweeps that survive faults: a worker killed part-way, a tracking store that goes away.

A killed worker fails only its own run, and the next invocation continues that run from its
checkpoint; results that the store could not take wait on disk (plain JSON) and are written when
it returns, at the latest by the next invocation before it decides what to rerun.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import requests
import yaml
from mlflow.exceptions import MlflowException, RestException
from mlflow.tracking import MlflowClient
from store_support import fresh_store
from test_mlflow_server import free_port
from test_sweep import _alive, _children_of, _command_line, _live_children, runs_of

import benchmark.sweeps.driver
import benchmark.sweeps.liveness
from benchmark.cli import main
from benchmark.run.checkpoints import read_checkpoint
from benchmark.sweeps.driver import RESUMED, sweep_command
from benchmark.sweeps.grid import load_sweep
from benchmark.sweeps.launchers import LocalLauncher
from benchmark.sweeps.outbox import HTTP_CLIENT, is_transient
from benchmark.sweeps.worker import execute_job

TIMING = ("train_seconds", "checkpoint_seconds", "wall_seconds", "cpu_seconds")
"""Metrics that measure time: they differ between any two runs."""


def write_sweep(folder: Path, name: str, **changes) -> Path:
    """A small sweep file ``folder/<name>.yaml`` (bandit runs of a few seconds at most)."""
    sweep = {
        "name": name,
        "seeds": 2,
        "overrides": {"trainer.env_steps": 3000, "eval.trials": 50, "algo.batch_size": 64},
        "algorithms": [],
        "strategies": ["random", "oracle"],
        "tasks": [{"name": "bernoulli-bandit", "variants": [{"arms": 2, "pulls": 5}]}],
        **changes,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def comparable(metrics) -> list[tuple[str, float | str, int]]:
    """(key, value, step) rows of a run's metrics, without the timing ones, in a fixed order."""
    rows = [(key, value if value == value else "nan", step) for key, value, step, *_ in metrics]
    return sorted((row for row in rows if not row[0].endswith(TIMING)), key=str)


def stored_metrics(client: MlflowClient, run_id: str) -> list[tuple[str, float, int]]:
    """Every metric value a run holds in the store, as :func:`comparable` rows."""
    keys = client.get_run(run_id).data.metrics
    rows = [(key, m.value, m.step) for key in keys for m in client.get_metric_history(run_id, key)]
    return comparable(rows)


# The tracking store going away -------------------------------------------------------------
def refused(*args, **kwargs):
    """What MLflow raises when its server does not answer (the connection error as context)."""
    try:
        raise requests.ConnectionError("[Errno 111] Connection refused")
    except requests.ConnectionError:
        raise MlflowException("API request to http://127.0.0.1:1/api failed") from None


class Store:
    """A switch for :class:`FlakyClient`: while ``down``, every call fails as a stopped server's."""

    down = False


class FlakyClient:
    """An MlflowClient whose calls are refused while :attr:`Store.down` is set."""

    def __init__(self, uri: str):
        self._client = MlflowClient(uri)

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute
        return lambda *args, **kwargs: (refused if Store.down else attribute)(*args, **kwargs)


class Handle:
    """A job of :class:`InlineLauncher` and, once run, its record."""

    def __init__(self, job):
        self.job, self.record = job, None


class InlineLauncher:
    """Runs each job in this process when it is waited on; ``before(n)`` runs before job n."""

    slots = 1
    description = "this process"

    def __init__(self, before):
        self.before, self.count = before, 0

    def submit(self, job):
        return Handle(job)

    def wait(self, handles, timeout):
        handle = handles[0]
        self.before(self.count)
        self.count += 1
        handle.record = execute_job(handle.job)
        return [handle]

    def result(self, handle):
        return handle.record

    def close(self, cancel):
        pass


@pytest.fixture
def http_settings(monkeypatch):
    """MLflow's HTTP settings, which a sweep driver changes, restored after the test."""
    for key, value in HTTP_CLIENT.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def flaky_store(tmp_path, monkeypatch, http_settings):
    """A sqlite store reached through :class:`FlakyClient`, with the driver's waits cut short."""
    monkeypatch.chdir(tmp_path)
    Store.down = False
    monkeypatch.setattr(benchmark.sweeps.driver, "MlflowClient", FlakyClient)
    for name in ("START_PATIENCE", "RECORD_PATIENCE", "END_PATIENCE", "AWAY_POLL_SECONDS"):
        monkeypatch.setattr(benchmark.sweeps.driver, name, 0.0)
    yield fresh_store(tmp_path)
    Store.down = False


def run_inline(path: Path, uri: str, folder: Path, switches: dict[int, bool]) -> int:
    def before(index: int) -> None:
        Store.down = switches.get(index, Store.down)

    launcher = InlineLauncher(before)
    return sweep_command(str(path), [], "local", 1, uri, None, folder / "results", launcher)


def test_is_transient_only_for_an_unreachable_or_failing_server(http_settings):
    client = MlflowClient(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(MlflowException) as unreachable:
        client.get_experiment_by_name("x")
    assert is_transient(unreachable.value)
    assert is_transient(RestException({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "x"}))
    assert is_transient(MlflowException("request failed with error code 502 != 200. Response"))
    assert not is_transient(RestException({"error_code": "INVALID_PARAMETER_VALUE", "message": ""}))
    assert not is_transient(MlflowException("Changing param values is not allowed"))
    assert not is_transient(ValueError("bad"))


def test_results_wait_on_disk_while_the_store_is_away_and_are_written_when_it_returns(
    flaky_store, tmp_path, capfd
):
    uri = flaky_store
    path = write_sweep(tmp_path, "away")
    # Away while the second and third jobs run (the third starts then), back for the fourth.
    assert run_inline(path, uri, tmp_path, {1: True, 3: False}) == 0
    err = capfd.readouterr().err
    assert "the tracking store is unreachable" in err and "kept in" in err
    assert "the tracking store is back: wrote 3 kept results" in err
    runs = runs_of(uri, "away")
    children = runs[runs["role"] == "child"]
    assert len(children) == 4 and set(children["status"]) == {"FINISHED"}
    assert children["config_hash"].is_unique
    assert runs[runs["role"] == "parent"]["status"].tolist() == ["FINISHED"]
    client = MlflowClient(uri)
    for run_id in children["run_id"]:
        run = client.get_run(run_id)
        assert "eval/mean_total_reward" in run.data.metrics and run.data.params["seed"]
        assert {a.path for a in client.list_artifacts(run_id)} >= {"evaluation.json"}
    assert not (tmp_path / ".metarl" / "pending" / "away" / "away").exists()


def test_a_sweep_ending_while_the_store_is_away_stops_with_one_line_then_the_next_writes_first(
    flaky_store, tmp_path, capfd, monkeypatch
):
    uri = flaky_store
    path = write_sweep(tmp_path, "gone")
    assert run_inline(path, uri, tmp_path, {2: True}) == benchmark.sweeps.driver.EXIT_PENDING
    err = capfd.readouterr().err
    folder = tmp_path / ".metarl" / "pending" / "gone" / "gone"
    last = err.strip().splitlines()[-1]
    assert "unreachable: 3 results are kept in" in last and str(folder) in last
    kept = sorted(folder.glob("*.json"))
    assert len(kept) == 3  # two runs' results and the parent's status: plain JSON
    entries = [json.loads(file.read_text()) for file in kept]
    runs = [entry for entry in entries if entry["metrics"]]
    assert len(runs) == 2 and sum(entry["run_id"] is None for entry in runs) == 1
    evaluation = json.loads(base64.b64decode(runs[0]["artifacts"]["evaluation.json"]))
    assert "mean_total_reward" in evaluation
    assert not (tmp_path / "results").exists()  # no table from a store that is away

    Store.down = False
    monkeypatch.setattr(
        benchmark.sweeps.liveness, "driver_alive", lambda tags: False
    )  # it has exited
    assert main(["--tracking-uri", uri, "sweep", str(path), "--workers", "1"]) == 0
    err = capfd.readouterr().err
    assert "wrote 3 results kept by an earlier invocation" in err
    assert "4 already finished, 0 to run" in err
    runs = runs_of(uri, "gone")
    children = runs[runs["role"] == "child"]
    assert len(children) == 4 and set(children["status"]) == {"FINISHED"}
    assert children["config_hash"].is_unique
    assert set(runs[runs["role"] == "parent"]["status"]) == {"FINISHED"}
    assert not folder.exists()


# A worker killed part-way ------------------------------------------------------------------
def test_a_killed_pool_worker_fails_only_its_job_and_a_fresh_process_replaces_it(tmp_path):
    path = write_sweep(tmp_path, "pool", algorithms=["lstm-a2c"], strategies=["random"])
    sweep = load_sweep(str(path), ["trainer.env_steps=10000000", "seeds=2"])
    long, quick = sweep.jobs[0], [job for job in sweep.jobs if job.kind == "classical"]
    launcher = LocalLauncher(2)
    try:
        doomed, other = launcher.submit(long), launcher.submit(quick[0])
        os.kill(doomed.pid, signal.SIGKILL)
        done = []
        while len(done) < 2:
            done += launcher.wait([h for h in (doomed, other) if h not in done], 240)
        record = launcher.result(doomed)
        assert record["status"] == "FAILED"
        assert record["error"] == f"worker process {doomed.pid} died (SIGKILL)"
        assert launcher.result(other)["status"] == "FINISHED"
        assert not _alive(doomed.pid)
        assert len(_live_children()) == 2 and doomed.pid not in _live_children()
        after = launcher.submit(quick[1])
        assert launcher.wait([after], 240) == [after]
        assert launcher.result(after)["status"] == "FINISHED"
    finally:
        launcher.close(cancel=True)
    assert _live_children() == []


def test_a_worker_resumes_from_its_checkpoint_with_the_whole_metric_history(tmp_path):
    overrides = ["trainer.env_steps=4000", "trainer.checkpoint_every=1000", "algo.log_every=1"]
    path = write_sweep(tmp_path, "resume", algorithms=["lstm-a2c"], strategies=[], seeds=2)
    first, second = load_sweep(str(path), overrides).jobs
    first.checkpoint = str(tmp_path / "first.ckpt")
    full = execute_job(first)
    assert full["status"] == "FINISHED" and "resumed_from_env_steps" not in full
    checkpoint = read_checkpoint(Path(first.checkpoint))  # the last one written before the end
    steps = int(checkpoint["module"]["env_steps"])
    assert 0 < steps < 4000 and checkpoint["metrics"]
    shutil.copy(first.checkpoint, tmp_path / "foreign.ckpt")

    resumed = execute_job(first)
    assert resumed["resumed_from_env_steps"] == steps
    assert comparable(resumed["metrics"]) == comparable(full["metrics"])
    assert resumed["summary"] == full["summary"]

    second.checkpoint = str(tmp_path / "foreign.ckpt")  # another seed's: not this run's
    alone = execute_job(second)
    assert "resumed_from_env_steps" not in alone
    second.checkpoint = ""
    assert comparable(execute_job(second)["metrics"]) == comparable(alone["metrics"])


def _workers_of(pid: int) -> list[int]:
    return [p for p in _children_of(pid) if b"resource_tracker" not in _command_line(p)]


@pytest.mark.slow  # a sweep driver subprocess, a rerun and a reference run: ~2 minutes
def test_kill_9_of_one_sweep_worker_fails_its_run_only_and_the_rerun_resumes_it(
    tmp_path, monkeypatch, capfd, http_settings
):
    monkeypatch.chdir(tmp_path)
    uri = fresh_store(tmp_path)
    overrides = {"trainer.env_steps": 240000, "trainer.checkpoint_every": 20000}
    overrides.update({"eval.trials": 50, "algo.batch_size": 64, "algo.log_every": 5})
    path = write_sweep(
        tmp_path, "kill", algorithms=["lstm-a2c"], strategies=[], seeds=3, overrides=overrides
    )
    command = [sys.executable, "-m", "benchmark", "--tracking-uri", uri, "sweep", str(path)]
    log = tmp_path / "driver.log"
    driver = subprocess.Popen([*command, "--workers", "2"], stderr=log.open("w"))
    checkpoints = tmp_path / ".metarl" / "checkpoints" / "kill"
    deadline = time.monotonic() + 300
    while len(list(checkpoints.glob("*.ckpt"))) < 2:  # both running jobs are part-way
        assert driver.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "no checkpoints in time"
        time.sleep(0.1)
    victim, survivor = _workers_of(driver.pid)
    os.kill(victim, signal.SIGKILL)
    assert driver.wait(timeout=600) == 1, log.read_text()

    runs = runs_of(uri, "kill")
    children = runs[runs["role"] == "child"].set_index("run_id")
    assert sorted(children["status"]) == ["FAILED", "FINISHED", "FINISHED"]
    client = MlflowClient(uri)
    killed = children[children["status"] == "FAILED"].index.item()
    tags = client.get_run(killed).data.tags
    assert tags["metarl.error"] == f"worker process {victim} died (SIGKILL)"
    workers = {client.get_run(run_id).data.tags["metarl.worker"] for run_id in children.index}
    assert any(worker.endswith(f":{survivor}") for worker in workers)  # its job went on
    kept = checkpoints / f"{tags['config_hash']}.ckpt"
    assert [file.name for file in checkpoints.glob("*.ckpt")] == [kept.name]
    steps = int(read_checkpoint(kept)["module"]["env_steps"])

    assert main(["--tracking-uri", uri, "sweep", str(path), "--workers", "2"]) == 0
    assert "2 already finished, 1 to run (1 from a checkpoint)" in capfd.readouterr().err
    runs = runs_of(uri, "kill")
    again = runs[(runs["config_hash"] == tags["config_hash"]) & (runs["status"] == "FINISHED")]
    run = client.get_run(again["run_id"].item())
    assert run.data.tags[RESUMED] == str(steps) and 0 < steps < 240000
    assert not kept.exists()

    job = next(j for j in load_sweep(str(path), []).jobs if j.config_hash == tags["config_hash"])
    reference = execute_job(job)  # uninterrupted, without a checkpoint
    assert stored_metrics(client, run.info.run_id) == comparable(reference["metrics"])


# A real tracking server stopped and restarted ----------------------------------------------
def start_server(port: int, root: Path) -> subprocess.Popen:
    """``mlflow server`` on ``port`` with its store and artifacts under ``root``, once healthy."""
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{root / 'server.db'}"]
    command += ["--artifacts-destination", str(root / "server-artifacts")]
    server = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 240
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return server
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                stop_server(server)
                raise RuntimeError("mlflow server did not start") from None
            time.sleep(0.3)


def stop_server(server: subprocess.Popen) -> None:
    """Stop the server and every process it started."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=60)


@pytest.mark.slow  # two mlflow server starts and a sweep: ~2-3 minutes
def test_a_tracking_server_restarted_part_way_through_a_sweep_loses_no_result(tmp_path):
    port, root = free_port(), tmp_path / "server"
    root.mkdir()
    server = start_server(port, root)
    url = f"http://127.0.0.1:{port}"
    overrides = {"trainer.env_steps": 60000, "eval.trials": 50, "algo.batch_size": 64}
    path = write_sweep(tmp_path, "restart", algorithms=["lstm-a2c"], seeds=3, overrides=overrides)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    command = [sys.executable, "-m", "benchmark", "--tracking-uri", url, "sweep", str(path)]
    log = tmp_path / "driver.log"
    driver = subprocess.Popen(
        [*command, "--workers", "2"], stderr=log.open("w"), cwd=tmp_path, env=env
    )
    try:
        client = MlflowClient(url)
        deadline = time.monotonic() + 300
        while "[1/9]" not in log.read_text():  # one result is in, the other runs go on
            assert driver.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        stop_server(server)
        time.sleep(3)
        server = start_server(port, root)
        assert driver.wait(timeout=600) == 0, log.read_text()
        err = log.read_text()
        assert "the tracking store is unreachable" in err and "the tracking store is back" in err
        runs = runs_of(url, "restart")
        children = runs[runs["role"] == "child"]
        assert len(children) == 9 and set(children["status"]) == {"FINISHED"}, children
        assert children["config_hash"].is_unique
        assert runs[runs["role"] == "parent"]["status"].tolist() == ["FINISHED"]
        for run_id, kind in zip(children["run_id"], children["algorithm"], strict=True):
            run = client.get_run(run_id)
            assert "eval/mean_total_reward" in run.data.metrics, run_id
            assert {a.path for a in client.list_artifacts(run_id)} >= {"evaluation.json"}
            if kind == "lstm-a2c":
                assert client.get_metric_history(run_id, "train/reward_per_step")
        assert not list((tmp_path / ".metarl").glob("pending/*/*/*.json"))
    finally:
        if driver.poll() is None:
            driver.kill()
        stop_server(server)
