"""The training log: ``train/*`` metrics per logging interval, through Lightning's CSVLogger."""

from __future__ import annotations

import csv

import pytest
import torch
from pytorch_lightning.loggers import CSVLogger
from run_support import fit_updates

from baselines.base import interval_metrics
from benchmark.run.config import load_run_config
from benchmark.run.runner import build_module


def _logged(tmp_path, algo: str, overrides: list[str], updates: int) -> list[dict[str, str]]:
    """The logged rows of ``updates`` updates of ``algo`` on 9-pull bandit trials of 3 arms."""
    spec = load_run_config(algo, "bernoulli-bandit", ["task.arms=3", "task.pulls=9", *overrides])
    module = build_module(spec)
    logger = CSVLogger(tmp_path, name="run")
    fit_updates(spec, module, updates, logger)
    with open(f"{logger.log_dir}/metrics.csv") as handle:
        return [row for row in csv.DictReader(handle) if row.get("train/policy_loss")]


def test_interval_metrics_average_parts_per_update_and_returns_per_trial():
    sums = {
        "policy_loss": torch.tensor(3.0),
        "entropy": 1.5,
        "updates": 3,
        "completed_return": torch.tensor(14.0),
        "completed_trials": torch.tensor(4.0),
    }
    assert interval_metrics(sums) == {
        "train/policy_loss": 1.0,
        "train/entropy": 0.5,
        "train/trial_return": 3.5,
    }
    assert sums["updates"] == 3  # the caller's sums are left as they were
    no_trials = {**sums, "completed_return": 0.0, "completed_trials": 0.0}
    assert "train/trial_return" not in interval_metrics(no_trials)


def test_trial_return_is_logged_when_no_logging_update_ends_a_trial(tmp_path):
    """4-step segments, a log every 2 updates: the 9-pull trials end in updates 3, 5, 7 and 9,
    never in a logging update, and each log reports the trials since the last one."""
    overrides = ["algo.batch_size=3", "algo.rollout_steps=4", "algo.log_every=2"]
    rows = _logged(tmp_path, "lstm-a2c", overrides, updates=10)
    assert [int(row["step"]) for row in rows] == [24, 48, 72, 96, 120]  # env steps, 3 trials
    returns = [row["train/trial_return"] for row in rows]
    assert returns[0] == ""  # no trial has ended by step 8 of 9
    assert all(0.0 <= float(value) <= 9.0 for value in returns[1:])  # 9 Bernoulli pulls
    assert len({float(value) for value in returns[1:]}) > 1  # each log its own trials


@pytest.mark.parametrize("algo", ["rl2", "lstm-a2c", "a2c", "lstm-a3c"])
def test_a_run_shorter_than_one_logging_interval_logs_its_last_update(tmp_path, algo):
    """3 updates of whole 9-pull trials (4 trials each) with a log every 10 updates."""
    overrides = ["algo.batch_size=4", "algo.log_every=10"]
    if algo == "lstm-a3c":
        overrides += ["algo.workers=1"]
    rows = _logged(tmp_path, algo, overrides, updates=3)
    assert [int(row["step"]) for row in rows] == [108]  # 3 updates x 4 trials x 9 pulls
    assert 0.0 <= float(rows[0]["train/trial_return"]) <= 9.0
