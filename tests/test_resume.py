"""Resumable checkpoints: a run continued from one ends exactly as the uninterrupted run did."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from benchmark.cli import main
from benchmark.run.checkpoints import FORMAT, read_checkpoint
from benchmark.run.config import load_run_config
from benchmark.run.runner import MemoryLogger, fit_and_evaluate

SMALL = {
    "lstm-a2c": ["task.arms=3", "task.pulls=5", "algo.batch_size=16"],
    "rl2": ["task.arms=3", "task.pulls=5", "algo.batch_size=16", "algo.minibatches=2"],
    "a2c": ["task.arms=3", "task.pulls=5", "algo.batch_size=16"],
}
"""Small bandit runs of each bit-reproducible algorithm: 80 env steps per rollout batch."""


def train(algo: str, overrides: list[str], tmp: Path, resume: dict | None = None, keep: int = 0):
    """Train through the real runner path; keep a copy of the ``keep``-th checkpoint written.

    Returns the outcome, the logged metrics and the kept checkpoint's path (or None).
    """
    spec = load_run_config(algo, "bernoulli-bandit", overrides)
    logger, kept, written = MemoryLogger(), tmp / "kept.ckpt", []

    def on_write(path: Path) -> None:
        written.append(path)
        if len(written) == keep:
            shutil.copy(path, kept)

    outcome = fit_and_evaluate(spec, logger, False, tmp / "last.ckpt", on_write, resume)
    return outcome, logger.history, kept if keep and kept.exists() else None


@pytest.mark.parametrize("algo", sorted(SMALL))
def test_a_resumed_run_ends_bit_identical_to_the_uninterrupted_one(algo, tmp_path):
    budget = ["trainer.env_steps=1600", "trainer.checkpoint_every=400", "eval.trials=300"]
    overrides = [*SMALL[algo], *budget, "algo.log_every=3", "seed=5"]
    full, full_metrics, kept = train(algo, overrides, tmp_path, keep=2)
    assert kept is not None
    checkpoint = read_checkpoint(kept)
    assert checkpoint["format"] == FORMAT and checkpoint["algorithm"] == algo
    assert int(checkpoint["module"]["env_steps"]) == 800  # the second multiple of 400

    resumed, resumed_metrics, _ = train(algo, overrides, tmp_path / "again", resume=checkpoint)
    assert int(resumed.module.env_steps) == int(full.module.env_steps) == 1600
    assert resumed.trainer.global_step == full.trainer.global_step
    for key, value in full.module.state_dict().items():
        assert torch.equal(value, resumed.module.state_dict()[key]), key
    assert resumed.result.mean_total_reward == full.result.mean_total_reward
    assert resumed.result.per_episode_returns == full.result.per_episode_returns
    # The resumed run logs what the uninterrupted one logged after the checkpoint, at the same
    # env steps and with the same values (the metric sums since the last log were restored).
    after = [(key, value, step) for key, value, step, _ in full_metrics if step > 800]
    assert [(key, value, step) for key, value, step, _ in resumed_metrics] == after


def test_lstm_a3c_continues_from_the_checkpoints_env_steps_and_budget(tmp_path):
    overrides = ["task.arms=3", "task.pulls=5", "algo.batch_size=16", "algo.workers=2"]
    overrides += ["trainer.env_steps=3200", "trainer.checkpoint_every=800", "eval.trials=100"]
    full, _, kept = train("lstm-a3c", overrides, tmp_path, keep=1)
    assert int(full.module.env_steps) == 3200 and kept is not None
    checkpoint = read_checkpoint(kept)
    done = checkpoint["training"]["module"]["reported_updates"]
    assert done * 80 == int(checkpoint["module"]["env_steps"]) >= 800
    resumed, metrics, _ = train("lstm-a3c", overrides, tmp_path / "again", resume=checkpoint)
    assert int(resumed.module.env_steps) == 3200  # the budget, not the checkpoint's steps + 3200
    assert resumed.module.reported_updates == 40  # 3200 / 80 env steps per update
    steps = [step for key, _, step, _ in metrics if key == "train/reward_per_step"]
    assert steps and min(steps) > 80 * done and max(steps) <= 3200


def run_json(argv, capsys) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_resume_refuses_a_finished_run_an_unknown_one_and_extra_arguments(tracking_uri, capsys):
    fast = ["task.arms=3", "task.pulls=5", "algo.batch_size=16", "trainer.env_steps=400"]
    summary = run_json(["run", "lstm-a2c", "bernoulli-bandit", *fast, "--json"], capsys)
    run_id = summary["run_id"]
    assert main(["run", "--resume", run_id]) == 2
    assert "already FINISHED" in capsys.readouterr().err
    assert main(["run", "--resume", "0" * 32]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["run", "lstm-a2c", "--resume", run_id]) == 2
    assert "takes no algorithm" in capsys.readouterr().err
    client = MlflowClient(tracking_uri)
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1


def test_a_failed_run_without_a_checkpoint_is_refused_with_one_line(tracking_uri, capsys):
    fast = ["task.arms=3", "task.pulls=5", "algo.batch_size=16", "trainer.env_steps=400"]
    summary = run_json(["run", "lstm-a2c", "bernoulli-bandit", *fast, "--json"], capsys)
    client = MlflowClient(tracking_uri)
    client.set_terminated(summary["run_id"], "FAILED")
    assert main(["run", "--resume", summary["run_id"]]) == 2
    err = capsys.readouterr().err
    assert "no resumable checkpoint" in err and err.count("\n") == 1


# A real kill -9 in a subprocess -------------------------------------------------------------
KILL_BUDGET = {
    "lstm-a2c": ["task.pulls=10", "trainer.env_steps=600000", "trainer.checkpoint_every=100000"],
    "rl2": ["task.pulls=10", "trainer.env_steps=300000", "trainer.checkpoint_every=50000"],
    "a2c": ["task.pulls=10", "trainer.env_steps=1200000", "trainer.checkpoint_every=200000"],
}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchmark", *args]


def latest_run(uri: str):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("metarl-bench")
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])


def wait_for_checkpoint(process, root: Path, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not list(root.glob("mlartifacts/*/*/artifacts/checkpoints/last.ckpt")):
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint was written in time"
        time.sleep(0.05)
    time.sleep(1.0)  # a little further: the kill lands between checkpoints


@pytest.mark.slow
@pytest.mark.parametrize("algo", sorted(KILL_BUDGET))
def test_run_killed_with_sigkill_and_resumed_ends_as_the_uninterrupted_run(algo, tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    args = ["run", algo, "bernoulli-bandit", *KILL_BUDGET[algo], "seed=2", "eval.trials=500"]
    roots = {name: tmp_path / name for name in ("full", "killed")}
    for root in roots.values():
        root.mkdir()
    full_uri = f"sqlite:///{roots['full'] / 'mlflow.db'}"
    full = subprocess.run(
        cli(*args, "--json", "--tracking-uri", full_uri),
        capture_output=True,
        text=True,
        cwd=roots["full"],
        env=env,
    )
    assert full.returncode == 0, full.stderr
    expected = json.loads(full.stdout.strip().splitlines()[-1])

    root = roots["killed"]
    uri = f"sqlite:///{root / 'mlflow.db'}"
    process = subprocess.Popen(
        cli(*args, "--json", "--tracking-uri", uri), cwd=root, env=env, stdout=subprocess.DEVNULL
    )
    wait_for_checkpoint(process, root)
    process.send_signal(signal.SIGKILL)
    process.wait()
    run = latest_run(uri)[0]
    assert run.info.status == "RUNNING"  # nobody could mark it
    resumed = subprocess.run(
        cli("run", "--resume", run.info.run_id, "--json", "--tracking-uri", uri),
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert summary["run_id"] == run.info.run_id
    for key in ("mean_total_reward", "stderr", "normalized_score", "env_steps"):
        assert summary[key] == expected[key], key
    client = MlflowClient(uri)
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    # Metrics continue at the right env steps: the same steps as the uninterrupted run's (those
    # between the checkpoint and the kill were logged twice, with the same values).
    key = "train/reward_per_step"
    steps = {(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)}
    reference = MlflowClient(full_uri).get_metric_history(expected["run_id"], key)
    assert steps == {(m.step, m.value) for m in reference}
