"""LSTM-A3C: real asynchrony, shared optimiser state, and clean shutdown in every way a run can end.

Worker processes are spawned for real (each imports torch and the suite, a few seconds), so the
tests keep budgets tiny and share nothing between them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from a3c_support import ExplodingInWorker1, burn_cpu
from mlflow import MlflowClient
from run_support import fit_updates
from store_support import fresh_store

from baselines.actor_learner import worker_seed
from baselines.async_learner import WorkerError
from baselines.base import scheduled
from baselines.lstm_a3c import LSTMA3C, LSTMA3CConfig
from benchmark.run.checkpoints import read_checkpoint
from benchmark.run.config import load_run_config
from benchmark.run.evaluation import evaluate_policy
from benchmark.run.restore import load_module
from benchmark.run.runner import CHECKPOINT_ARTIFACT, build_module, cpu_time, train_and_evaluate
from benchmark.run.tracking import download_artifact
from tasks import ConfigError

REPO = Path(__file__).resolve().parents[1]
SMALL = ["task.arms=3", "task.pulls=5", "algo.batch_size=8", "algo.hidden_size=16"]


# Process inspection through /proc (psutil is not a dependency) -----------------------------
def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0], ppid [1], session [3])."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _live_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        stat = _stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None and stat[0] != "Z":
            pids.append(int(entry.name))
    return pids


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _worker_children(parent: int) -> list[int]:
    """Live spawned worker processes of ``parent`` (not multiprocessing's resource tracker)."""
    return [
        pid
        for pid in _live_pids()
        if (_stat(pid) or ["", "0"])[1] == str(parent)
        and "spawn_main" in _cmdline(pid)
        and "resource_tracker" not in _cmdline(pid)
    ]


def _session_members(session: int) -> list[int]:
    return [pid for pid in _live_pids() if (_stat(pid) or ["", "", "", ""])[3] == str(session)]


def _fit(overrides: list[str], updates: int, module: LSTMA3C | None = None) -> LSTMA3C:
    """Train through the real Trainer (no logger) for ``updates`` worker updates."""
    spec = load_run_config("lstm-a3c", "bernoulli-bandit", [*SMALL, *overrides])
    module = module or build_module(spec)
    fit_updates(spec, module, updates)
    return module


# Config ---------------------------------------------------------------------------------------
def test_config_rejects_bad_workers_and_delays():
    with pytest.raises(ConfigError, match="algo.workers must be >= 1"):
        LSTMA3CConfig(workers=0)
    with pytest.raises(ConfigError, match="3 entries for 2 workers"):
        LSTMA3CConfig(workers=2, worker_delays=[0.0, 0.1, 0.2])
    with pytest.raises(ConfigError, match="worker_delays must be >= 0"):
        LSTMA3CConfig(worker_delays=[-1.0])
    with pytest.raises(ConfigError, match="unknown key 'algo.wrkers'"):
        load_run_config("lstm-a3c", "bernoulli-bandit", ["algo.wrkers=2"])


def test_learning_rate_schedule_runs_over_the_shared_update_count():
    assert [scheduled(0.01, "constant", u, 100) for u in (0, 50, 99)] == [0.01, 0.01, 0.01]
    linear = [scheduled(0.01, "linear", u, 100) for u in (0, 50, 99)]
    assert linear == pytest.approx([0.01, 0.005, 1e-4])


def test_normalised_critic_moments_are_shared_by_the_workers():
    """Each worker pulls the shared moments and pushes the ones its loss updated: after 40
    updates by 2 workers the Lightning process's module holds a moving average of the returns
    (not the initial 0 and 1). A push may overwrite others made since its pull, so the count of
    folded batches is at most 40 and, in the shared copy, at least 1."""
    module = _fit(["algo.workers=2", "algo.normalize_values=true"], updates=40)
    assert module.value_moments.is_shared() and module.value_batches.is_shared()
    assert 1 <= int(module.value_batches) <= 40
    mean, second = module.value_moments.tolist()
    assert mean > 0.05 and second > mean**2  # bandit returns are positive and spread out
    plain = _fit(["algo.workers=2"], updates=5)
    assert plain.learned_statistics() == [] and not hasattr(plain, "value_moments")


def test_worker_streams_differ_between_workers_and_runs():
    seeds = {worker_seed("lstm-a3c", seed, index) for seed in range(3) for index in range(4)}
    assert len(seeds) == 12


# Asynchrony, end to end ----------------------------------------------------------------------
def test_slow_worker_does_not_hold_back_the_fast_one(tmp_path, monkeypatch):
    """Worker 1 pauses 0.25 s before applying each gradient; worker 0 runs at full speed.

    Asynchronous means: the fast worker applies more of the shared updates, and the slow worker's
    gradients land on parameters the fast one changed meanwhile (they are stale), so neither waited
    for the other. The run goes through the real runner: Trainer, sqlite MLflow store, held-out
    evaluation and checkpoint, which must hold the shared parameters and optimiser counters.
    """
    monkeypatch.chdir(tmp_path)
    uri = fresh_store(tmp_path)
    budget = 40  # updates of 8 trials x 5 pulls = 1600 env steps, over both workers
    overrides = [*SMALL, "algo.worker_delays=[0.0,0.25]", "algo.log_every=5"]
    overrides += ["trainer.env_steps=1600", "eval.trials=50"]
    spec = load_run_config("lstm-a3c", "bernoulli-bandit", overrides)
    summary = train_and_evaluate(spec, uri, "a3c-test", progress=False)
    assert summary["env_steps"] == 1600
    assert multiprocessing.active_children() == []
    assert _worker_children(os.getpid()) == []

    client = MlflowClient(uri)
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    fast, slow = metrics["train/updates_worker0"], metrics["train/updates_worker1"]
    assert fast + slow == budget
    assert slow >= 1
    assert fast >= 3 * slow
    assert metrics["train/max_staleness_worker1"] >= 1
    history = client.get_metric_history(run.info.run_id, "train/entropy")
    assert [m.step for m in history] == [200 * k for k in range(1, 9)]  # env steps on the x-axis

    checkpoint = read_checkpoint(
        download_artifact(uri, run.info.run_id, CHECKPOINT_ARTIFACT, tmp_path)
    )
    optimizer = checkpoint["training"]["optimizers"][0]
    steps = {float(s["step"]) for s in optimizer["state"].values()}
    assert steps == {float(budget)}  # one optimiser, its step counters shared by both workers
    # The run's CPU time counts the workers' (they learn; the Lightning process mostly waits).
    assert (
        metrics["cpu_seconds"]
        >= sum(checkpoint["training"]["module"]["workers"]["cpu_seconds"])
        > 0
    )
    module = load_module(summary["run_id"], uri)
    assert isinstance(module, LSTMA3C)
    # The run's evaluation is of the checkpointed parameters: replayed here, the same numbers.
    replay = evaluate_policy(module.make_policy(), module.family, 50, seed=spec.seed)
    assert replay.mean_total_reward == summary["mean_total_reward"]
    assert replay.stderr == summary["stderr"]
    pl.seed_everything(spec.seed, verbose=False)
    initial = build_module(spec).network.state_dict()
    # The checkpoint holds the parameters the workers learned, not the initial ones.
    assert any(not torch.equal(initial[k], v) for k, v in module.network.state_dict().items())


def test_cpu_time_counts_child_processes_once_joined():
    before, own = cpu_time(), time.process_time()
    child = multiprocessing.get_context("spawn").Process(target=burn_cpu, args=(0.5,))
    child.start()
    child.join()
    assert cpu_time() - before >= 0.5 + (time.process_time() - own)


# Failures and interruption ------------------------------------------------------------------
def test_worker_exception_propagates_and_stops_every_worker():
    spec = load_run_config("lstm-a3c", "bernoulli-bandit", SMALL)
    module = build_module(spec)
    module.family = ExplodingInWorker1(module.family.config)
    started = time.monotonic()
    with pytest.raises(WorkerError, match="bandit exploded in worker 1") as error:
        _fit([], updates=10**6, module=module)
    assert "Traceback" in str(error.value)
    assert time.monotonic() - started < 90
    assert multiprocessing.active_children() == []
    assert _worker_children(os.getpid()) == []


@pytest.mark.slow
def test_exception_in_the_lightning_process_stops_the_workers(monkeypatch):
    def failing_step(self, report, batch_idx):
        raise ValueError("logging failed")

    monkeypatch.setattr(LSTMA3C, "training_step", failing_step)
    with pytest.raises(ValueError, match="logging failed"):
        _fit([], updates=10**6)
    assert multiprocessing.active_children() == []
    assert _worker_children(os.getpid()) == []


def _count_metric(db: Path, key: str) -> int:
    """Rows of metric ``key`` in an MLflow sqlite store (0 while it is locked or missing)."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
    try:
        return connection.execute("select count(*) from metrics where key = ?", (key,)).fetchone()[
            0
        ]
    except sqlite3.OperationalError:
        return 0
    finally:
        connection.close()


def _wait_for_training(db: Path, process: subprocess.Popen, timeout: float) -> None:
    """Return once the run has logged a training metric (the workers are learning)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-2000:]
        if _count_metric(db, "train/updates_worker1") > 0:
            return
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError(
        f"no training metric after {timeout} s: {process.communicate()[1][-2000:]}"
    )


def _start_cli_run(tmp_path: Path) -> subprocess.Popen:
    """``python -m benchmark run lstm-a3c ...`` in its own session (its own process group)."""
    command = [
        sys.executable, "-m", "benchmark", "--tracking-uri", fresh_store(tmp_path),
        "run", "lstm-a3c", "bernoulli-bandit", *SMALL, "algo.log_every=1",
        "trainer.env_steps=1000000000", "--json",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _assert_ends_cleanly(process: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """The run exits in time (no hang) and leaves no process of its session behind.

    Returns its stdout and stderr.
    """
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError(f"the interrupted run hung for {timeout} s") from None
    deadline = time.monotonic() + 5
    while _session_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _session_members(process.pid)
    assert left == [], [_cmdline(pid) for pid in left]
    return stdout, stderr


def test_ctrl_c_mid_training_leaves_no_process_behind(tmp_path):
    """Ctrl-C in a terminal sends SIGINT to the whole foreground process group."""
    process = _start_cli_run(tmp_path)
    _wait_for_training(tmp_path / "mlflow.db", process, timeout=300)
    assert len(_worker_children(process.pid)) == 2
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = _assert_ends_cleanly(process, timeout=60)
    assert process.returncode != 0
    assert "run_id" not in stdout  # interrupted: no summary
    assert "KeyboardInterrupt" in stderr or "graceful shutdown" in stderr


@pytest.mark.slow
def test_sigterm_to_the_main_process_leaves_no_process_behind(tmp_path):
    process = _start_cli_run(tmp_path)
    _wait_for_training(tmp_path / "mlflow.db", process, timeout=300)
    os.kill(process.pid, signal.SIGTERM)
    stdout, _ = _assert_ends_cleanly(process, timeout=60)
    # Lightning stops after the current batch; the run reports the signal: 128 + 15.
    assert process.returncode == 143
    assert "run_id" not in stdout


@pytest.mark.slow
def test_workers_exit_when_the_main_process_is_killed(tmp_path):
    """SIGKILL skips every cleanup in the main process; the workers notice their parent is gone."""
    process = _start_cli_run(tmp_path)
    _wait_for_training(tmp_path / "mlflow.db", process, timeout=300)
    os.kill(process.pid, signal.SIGKILL)
    _assert_ends_cleanly(process, timeout=60)
