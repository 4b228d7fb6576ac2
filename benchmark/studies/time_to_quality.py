"""Time to quality: training wall-clock until a policy reaches a target score on held-out trials.

``metarl-bench perf --time-to-quality`` trains ``rl2`` and ``lstm-a2c`` on 5 arms x 100 pulls at
their YAML defaults and times, in the same run, when the policy first reaches each of
:data:`TARGETS` on held-out trials:

- 74.4, 95% of Gittins' published 78.3: reached when the check's mean is at least 74.4;
- 78.7, RL²'s published value: reached when the check's mean is within 3 standard errors of it by
  RL² Table 1's z (``reproduce rl2-table1``: ours, the published 1000-trial SE estimated from our
  per-trial spread, and the published rounding to 0.1), i.e. z >= -3.

Every ``every_env_steps`` the :class:`QualityClock` callback pauses the clock, plays ``trials``
trials from the ``tune`` task stream (never the ``test`` stream that reported results use) and
stops the Trainer once every target is reached. The clock counts training only, from the start of
``fit`` and without the checks, so the figure is what a run without checks would take to get there
(to the check's resolution).
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
from benchmark.studies.cells import FLAG_Z, Cell
from benchmark.studies.inputs import parse_settings, published_table
from benchmark.studies.rl2_table1 import SPEC as TABLE1

SETTING_5X100 = "100x5"
"""RL² Table 1's 5 arms x 100 pulls row."""

GITTINS_5X100 = published_table(TABLE1)[SETTING_5X100]["Gittins"]
"""Published Gittins mean total reward on 5 arms x 100 pulls (RL² Table 1): 78.3."""

TARGET_5X100 = round(0.95 * GITTINS_5X100, 1)
"""The quality target: 95% of Gittins, 74.4."""

RL2_5X100 = published_table(TABLE1)[SETTING_5X100]["RL2"]
"""RL²'s published mean total reward on 5 arms x 100 pulls: 78.7."""


@dataclass(frozen=True)
class Target:
    """A quality target: a threshold, or a published value to come within ``FLAG_Z`` SE of."""

    name: str
    value: float
    published: bool = False
    """True: reached when Table 1's z against ``value`` is >= -3 (else: mean >= ``value``)."""

    def reached(self, mean: float, stderr: float, trials: int) -> bool:
        """Whether a check's held-out mean (with its SE over ``trials`` trials) reaches it."""
        if not self.published:
            return mean >= self.value
        row = parse_settings(TABLE1, [SETTING_5X100])[0]
        cell = Cell(row, "RL2", "rl2", self.value, rounding_sd=TABLE1.rounding_sd)
        cell.mean, cell.stderr, cell.trials = mean, stderr, trials
        return cell.z is not None and cell.z >= -FLAG_Z


TARGETS = (
    Target("95% of Gittins", TARGET_5X100),
    Target("RL² published (z >= -3)", RL2_5X100, published=True),
)
"""The targets ``perf --time-to-quality`` times on 5 arms x 100 pulls."""


@dataclass
class QualityRun:
    """One run's outcome for one target: when (if) it reached it, and the curve of checks."""

    algorithm: str
    seed: int
    target: float
    published: bool = False
    """The target is a published value to come within 3 SE of (see :class:`Target`)."""
    reached: bool = False
    train_seconds: float = math.nan
    train_cpu_seconds: float = math.nan
    """CPU seconds of the training process to the target: what the run took on a core of its
    own, whatever else the machine was running (wall seconds depend on that load)."""
    env_steps: int = 0
    curve: list[tuple[int, float, float, float]] = field(default_factory=list)
    """(env steps, training seconds, held-out mean, its SE) at each check."""

    @property
    def goal(self) -> Target:
        """The run's target."""
        return Target("", self.target, self.published)


class QualityClock(pl.Callback):
    """Checks the policy every ``every_env_steps`` and stops training once every target is reached.

    Args:
        runs: the records to fill, one per target (of the same training run).
        every_env_steps: env steps between checks.
        trials: held-out trials per check (``tune`` stream).
    """

    def __init__(self, runs: list[QualityRun], every_env_steps: int, trials: int):
        self.runs, self.every, self.trials = runs, every_env_steps, trials
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
        mean, stderr = self.held_out_mean(module)
        for run in self.runs:
            run.curve.append((steps, self.elapsed, mean, stderr))
            if not run.reached and run.goal.reached(mean, stderr, self.trials):
                run.reached, run.train_seconds, run.env_steps = True, self.elapsed, steps
                run.train_cpu_seconds = self.cpu_elapsed
        trainer.should_stop = all(run.reached for run in self.runs)
        self.resumed, self.cpu_resumed = time.perf_counter(), time.process_time()

    def held_out_mean(self, module) -> tuple[float, float]:
        """Mean total reward of the current policy on ``trials`` trials of the tune stream, and
        its standard error."""
        rng_state = torch.get_rng_state()  # the check must not change the training run
        result = evaluate_policy(
            module.make_policy(), module.family, self.trials, self.runs[0].seed, split="tune"
        )
        torch.set_rng_state(rng_state)
        return result.mean_total_reward, result.stderr


BANDIT_5X100 = ("task.arms=5", "task.pulls=100")


def time_to_quality(
    algorithm: str,
    seed: int,
    target: float | Target,
    every_env_steps: int,
    trials: int,
    overrides: tuple[str, ...] = BANDIT_5X100,
) -> QualityRun:
    """Train ``algorithm`` on bernoulli-bandit (YAML defaults) until it reaches ``target`` (a
    mean total reward, or a :class:`Target`).

    The run stops at its budget (``trainer.env_steps``) if it never gets there.

    Args:
        algorithm: registered algorithm name.
        seed: the run's seed (training stream; the checks use its tune stream).
        target: the mean total reward to reach, or a target.
        every_env_steps: env steps between checks.
        trials: held-out trials per check.
        overrides: config overrides (the task's parameters first of all).
    """
    goal = target if isinstance(target, Target) else Target("", target)
    return time_to_targets(algorithm, seed, (goal,), every_env_steps, trials, overrides)[0]


def time_to_targets(
    algorithm: str,
    seed: int,
    targets: tuple[Target, ...],
    every_env_steps: int,
    trials: int,
    overrides: tuple[str, ...] = BANDIT_5X100,
) -> list[QualityRun]:
    """One training run timed to each of ``targets``: one record per target, in order.

    Training stops once every target is reached, or at its budget.

    Args: as :func:`time_to_quality`, with ``targets`` for ``target``.
    """
    spec = load_run_config(algorithm, "bernoulli-bandit", [*overrides, f"seed={seed}"])
    torch.set_num_threads(spec.config.trainer.threads)
    pl.seed_everything(seed, verbose=False)
    module = build_module(spec)
    runs = [QualityRun(algorithm, seed, t.value, t.published) for t in targets]
    trainer = make_trainer(spec, module, logger=False, progress=False)
    trainer.callbacks.append(QualityClock(runs, every_env_steps, trials))
    trainer.fit(module, MetaRLDataModule(seed))
    for run in runs:
        if not run.reached:
            run.env_steps = int(module.env_steps)
    return runs


def time_to_quality_rows(
    algorithms=("rl2", "lstm-a2c"),
    seeds=(0, 1, 2),
    every_env_steps=1_000_000,
    trials=1000,
    targets: tuple[Target, ...] = TARGETS,
    overrides: tuple[str, ...] = BANDIT_5X100,
) -> list[dict[str, Any]]:
    """One row per algorithm and target: mean seconds to the target over ``seeds`` (each seed one
    training run timed to every target), with each run."""
    rows = []
    names = ", ".join(f"{t.name} {t.value}" for t in targets)
    print(f"time to {names} on 5 arms x 100 pulls, seeds {list(seeds)}")
    for algorithm in algorithms:
        by_seed = [
            time_to_targets(algorithm, seed, targets, every_env_steps, trials, overrides)
            for seed in seeds
        ]
        for index, target in enumerate(targets):
            rows.append(_row(algorithm, target, [runs[index] for runs in by_seed]))
    return rows


def _row(algorithm: str, target: Target, runs: list[QualityRun]) -> dict[str, Any]:
    """The row of one algorithm and target over its seeds' runs."""
    mean, half_width = mean_ci([run.train_seconds for run in runs])
    cpu_mean, _ = mean_ci([run.train_cpu_seconds for run in runs])
    return {
        "algorithm": algorithm,
        "task": "bernoulli-bandit arms=5 pulls=100",
        "target": f"{target.name}: {target.value}",
        "seeds": len(runs),
        "reached": sum(run.reached for run in runs),
        "mean_seconds_to_target": float(mean),
        "ci95_seconds": float(half_width),
        "mean_cpu_seconds_to_target": float(cpu_mean),
        "env_steps_to_target": [run.env_steps for run in runs],
        "runs": [asdict(run) for run in runs],
    }
