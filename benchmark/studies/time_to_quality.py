"""Time to quality: training wall-clock until a policy reaches a target score on held-out trials.

``metarl-bench perf --time-to-quality`` trains ``rl2`` and ``lstm-a2c`` on 5 arms x 100 pulls at
their YAML defaults and stops each run when the policy first reaches 74.4 (95% of Gittins' 78.3)
on held-out trials. Every ``every_env_steps`` the :class:`QualityClock` callback pauses the clock,
plays ``trials`` trials from the ``tune`` task stream (never the ``test`` stream that reported
results use) and stops the Trainer once their mean reaches the target. The clock counts training
only, from the start of ``fit`` and without the checks, so the figure is what a run without checks
would take to get there (to the check's resolution).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch

from benchmark.reporting.stats import mean_ci
from benchmark.run.config import load_run_config
from benchmark.run.datamodule import MetaRLDataModule
from benchmark.run.evaluation import evaluate_policy
from benchmark.run.runner import build_module, make_trainer

GITTINS_5X100 = 78.3
"""Published Gittins mean total reward on 5 arms x 100 pulls (RL² Table 1)."""

TARGET_5X100 = round(0.95 * GITTINS_5X100, 1)
"""The quality target: 95% of Gittins, 74.4."""


@dataclass
class QualityRun:
    """One run's outcome: when (if) it reached the target, and the curve of checks."""

    algorithm: str
    seed: int
    target: float
    reached: bool = False
    train_seconds: float = math.nan
    train_cpu_seconds: float = math.nan
    """CPU seconds of the training process to the target: what the run took on a core of its
    own, whatever else the machine was running (wall seconds depend on that load)."""
    env_steps: int = 0
    curve: list[tuple[int, float, float]] = field(default_factory=list)
    """(env steps, training seconds, held-out mean) at each check."""


class QualityClock(pl.Callback):
    """Checks the policy every ``every_env_steps`` and stops training at the target.

    Args:
        run: the record to fill.
        every_env_steps: env steps between checks.
        trials: held-out trials per check (``tune`` stream).
    """

    def __init__(self, run: QualityRun, every_env_steps: int, trials: int):
        self.run, self.every, self.trials = run, every_env_steps, trials
        self.next_check = every_env_steps
        self.elapsed = self.cpu_elapsed = 0.0
        self.resumed = self.cpu_resumed = 0.0

    def on_train_start(self, trainer, module):
        self.resumed, self.cpu_resumed = time.perf_counter(), time.process_time()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        steps = int(module.env_steps)
        if steps < self.next_check:
            return
        self.elapsed += time.perf_counter() - self.resumed
        self.cpu_elapsed += time.process_time() - self.cpu_resumed
        self.next_check = steps + self.every
        mean = self.held_out_mean(module)
        self.run.curve.append((steps, self.elapsed, mean))
        if mean >= self.run.target:
            self.run.reached, self.run.train_seconds, self.run.env_steps = True, self.elapsed, steps
            self.run.train_cpu_seconds = self.cpu_elapsed
            trainer.should_stop = True
        self.resumed, self.cpu_resumed = time.perf_counter(), time.process_time()

    def held_out_mean(self, module) -> float:
        """Mean total reward of the current policy on ``trials`` trials of the tune stream."""
        rng_state = torch.get_rng_state()  # the check must not change the training run
        result = evaluate_policy(
            module.make_policy(), module.family, self.trials, self.run.seed, split="tune"
        )
        torch.set_rng_state(rng_state)
        return result.mean_total_reward


BANDIT_5X100 = ("task.arms=5", "task.pulls=100")


def time_to_quality(
    algorithm: str,
    seed: int,
    target: float,
    every_env_steps: int,
    trials: int,
    overrides: tuple[str, ...] = BANDIT_5X100,
) -> QualityRun:
    """Train ``algorithm`` on bernoulli-bandit (YAML defaults) until it reaches ``target``.

    The run stops at its budget (``trainer.env_steps``) if it never gets there.

    Args:
        algorithm: registered algorithm name.
        seed: the run's seed (training stream; the checks use its tune stream).
        target: mean total reward to reach.
        every_env_steps: env steps between checks.
        trials: held-out trials per check.
        overrides: config overrides (the task's parameters first of all).
    """
    spec = load_run_config(algorithm, "bernoulli-bandit", [*overrides, f"seed={seed}"])
    torch.set_num_threads(spec.config.trainer.threads)
    pl.seed_everything(seed, verbose=False)
    module = build_module(spec)
    run = QualityRun(algorithm, seed, target)
    trainer = make_trainer(spec, module, logger=False, progress=False)
    trainer.callbacks.append(QualityClock(run, every_env_steps, trials))
    trainer.fit(module, MetaRLDataModule(seed))
    if not run.reached:
        run.env_steps = int(module.env_steps)
    return run


def time_to_quality_rows(
    algorithms=("rl2", "lstm-a2c"), seeds=(0, 1, 2), every_env_steps=1_000_000, trials=1000
) -> list[dict[str, Any]]:
    """One row per algorithm: mean seconds to :data:`TARGET_5X100` over ``seeds``, with each run."""
    rows = []
    print(f"time to {TARGET_5X100} (95% of Gittins) on 5 arms x 100 pulls, seeds {list(seeds)}")
    for algorithm in algorithms:
        runs = [
            time_to_quality(algorithm, seed, TARGET_5X100, every_env_steps, trials)
            for seed in seeds
        ]
        mean, half_width = mean_ci([run.train_seconds for run in runs])
        cpu_mean, _ = mean_ci([run.train_cpu_seconds for run in runs])
        rows.append(
            {
                "algorithm": algorithm,
                "task": "bernoulli-bandit arms=5 pulls=100",
                "target": TARGET_5X100,
                "seeds": len(runs),
                "reached": sum(run.reached for run in runs),
                "mean_seconds_to_target": float(mean),
                "ci95_seconds": float(half_width),
                "mean_cpu_seconds_to_target": float(cpu_mean),
                "env_steps_to_target": [run.env_steps for run in runs],
                "runs": [asdict(run) for run in runs],
            }
        )
    return rows
