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

from baselines.lstm_a3c import LSTMA3C, LSTMA3CConfig, WorkerError, worker_seed
from benchmark.config import load_run_config
from benchmark.datamodule import MetaRLDataModule
from benchmark.runner import build_module, load_module, train_and_evaluate
from tasks import ConfigError
from tasks.bandits import BernoulliBandit

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
    trainer = pl.Trainer(
        max_steps=updates,
        max_epochs=-1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, MetaRLDataModule(seed=0))
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


def test_worker_streams_differ_between_workers_and_runs():
    seeds = {worker_seed(seed, index) for seed in range(3) for index in range(4)}
    assert len(seeds) == 12


# Asynchrony -----------------------------------------------------------------------------------
def test_slow_worker_does_not_hold_back_the_fast_one():
    """Worker 1 pauses 0.25 s before applying each gradient; worker 0 runs at full speed.

    Asynchronous means: the fast worker applies many more of the shared updates, and the slow
    worker's gradients land on parameters that the fast worker changed in the meantime (they are
    stale), so neither waited for the other. Every update goes through the one shared optimiser.
    """
    budget = 40
    module = _fit(["algo.workers=2", "algo.worker_delays=[0.0,0.25]"], updates=budget)
    fast, slow = module.worker_updates
    assert fast + slow == budget
    assert slow >= 1
    assert fast >= 3 * slow
    assert module.worker_staleness[1] >= 1
    assert int(module.env_steps) == budget * 8 * 5
    steps = {float(s["step"]) for s in module.trainer.optimizers[0].state.values()}
    assert steps == {float(budget)}  # the step counters are shared by both workers
    assert multiprocessing.active_children() == []
    assert _worker_children(os.getpid()) == []


# Failures and interruption ------------------------------------------------------------------
class _ExplodingInWorker1(BernoulliBandit):
    """A bandit that fails in worker 1's process only; worker 0 keeps learning."""

    def step(self, tasks, state, action, generator):
        if multiprocessing.current_process().name.endswith("-1"):
            raise RuntimeError("bandit exploded in worker 1")
        return super().step(tasks, state, action, generator)


def test_worker_exception_propagates_and_stops_every_worker():
    spec = load_run_config("lstm-a3c", "bernoulli-bandit", SMALL)
    module = build_module(spec)
    module.family = _ExplodingInWorker1(module.family.config)
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


def _wait_for_training(db: Path, process: subprocess.Popen, timeout: float) -> None:
    """Return once the run has logged a training metric (the workers are learning)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-2000:]
        if db.exists():
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as connection:
                try:
                    rows = connection.execute(
                        "select count(*) from metrics where key = 'train/updates_worker1'"
                    ).fetchone()
                except sqlite3.OperationalError:
                    rows = (0,)
            if rows[0] > 0:
                return
        time.sleep(0.2)
    raise AssertionError("the run did not start training in time")


def _start_cli_run(tmp_path: Path) -> subprocess.Popen:
    """``python -m benchmark run lstm-a3c ...`` in its own session (its own process group)."""
    command = [
        sys.executable, "-m", "benchmark", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
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


def _assert_ends_cleanly(process: subprocess.Popen, timeout: float) -> str:
    """The run exits in time (no hang) and leaves no process of its session behind."""
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError("the interrupted run hung") from None
    deadline = time.monotonic() + 5
    while _session_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _session_members(process.pid)
    assert left == [], [_cmdline(pid) for pid in left]
    return stderr


def test_ctrl_c_mid_training_leaves_no_process_behind(tmp_path):
    """Ctrl-C in a terminal sends SIGINT to the whole foreground process group."""
    process = _start_cli_run(tmp_path)
    _wait_for_training(tmp_path / "mlflow.db", process, timeout=120)
    assert len(_worker_children(process.pid)) == 2
    os.killpg(process.pid, signal.SIGINT)
    stderr = _assert_ends_cleanly(process, timeout=30)
    assert process.returncode != 0
    assert "KeyboardInterrupt" in stderr or "graceful shutdown" in stderr


@pytest.mark.slow
def test_sigterm_to_the_main_process_leaves_no_process_behind(tmp_path):
    process = _start_cli_run(tmp_path)
    _wait_for_training(tmp_path / "mlflow.db", process, timeout=120)
    os.kill(process.pid, signal.SIGTERM)
    _assert_ends_cleanly(process, timeout=30)
    assert process.returncode != 0


@pytest.mark.slow
def test_workers_exit_when_the_main_process_is_killed(tmp_path):
    """SIGKILL skips every cleanup in the main process; the workers notice their parent is gone."""
    process = _start_cli_run(tmp_path)
    _wait_for_training(tmp_path / "mlflow.db", process, timeout=120)
    os.kill(process.pid, signal.SIGKILL)
    _assert_ends_cleanly(process, timeout=30)


# End to end -----------------------------------------------------------------------------------
def test_run_through_runner_logs_to_mlflow_and_reloads(tracking_uri):
    uri = tracking_uri
    overrides = [*SMALL, "trainer.env_steps=2000", "eval.trials=50", "algo.log_every=5"]
    spec = load_run_config("lstm-a3c", "bernoulli-bandit", overrides)
    summary = train_and_evaluate(spec, uri, "a3c-test", progress=False)
    assert summary["env_steps"] == 2000  # 50 updates of 8 trials x 5 pulls, over both workers
    assert 0.0 <= summary["mean_total_reward"] <= 5.0

    from mlflow import MlflowClient

    client = MlflowClient(uri)
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["algo.workers"] == "2"
    updates = [run.data.metrics[f"train/updates_worker{i}"] for i in range(2)]
    assert sum(updates) == 50
    history = client.get_metric_history(run.info.run_id, "train/entropy")
    assert [m.step for m in history] == [200 * k for k in range(1, 11)]  # env steps on the x-axis
    module = load_module(summary["run_id"], uri)
    assert isinstance(module, LSTMA3C)
    pl.seed_everything(spec.seed, verbose=False)
    initial = build_module(spec).network.state_dict()
    # The checkpoint holds the parameters the workers learned, not the initial ones.
    assert any(not torch.equal(initial[k], v) for k, v in module.network.state_dict().items())
    assert multiprocessing.active_children() == []
