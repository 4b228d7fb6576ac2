"""Test support: a short training run through the real runner path, with its logged metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl

from baselines.base import MetaRLAlgorithm
from benchmark.run.config import RunSpec, load_run_config
from benchmark.run.datamodule import MetaRLDataModule
from benchmark.run.runner import FitOutcome, MemoryLogger, fit_and_evaluate, make_trainer


@dataclass
class ShortRun:
    """A finished short run and every metric it logged, as {key: [values]}."""

    outcome: FitOutcome
    metrics: dict[str, list[float]]

    def finite(self, key: str) -> bool:
        """True when ``key`` was logged at least once and every value is finite."""
        values = self.metrics.get(key, [])
        return bool(values) and all(math.isfinite(v) for v in values)


def short_run(algo: str, task: str, overrides: list[str]) -> ShortRun:
    """Train ``algo`` on ``task`` through ``fit_and_evaluate`` (Trainer, DataModule, evaluation)."""
    spec = load_run_config(algo, task, [*overrides, "algo.log_every=1"])
    logger = MemoryLogger()
    outcome = fit_and_evaluate(spec, logger=logger, progress=False)
    metrics: dict[str, list[float]] = {}
    for key, value, _, _ in logger.history:
        metrics.setdefault(key, []).append(value)
    return ShortRun(outcome, metrics)


def fit_updates(
    spec: RunSpec, module: MetaRLAlgorithm, updates: int, logger: Any = False
) -> pl.Trainer:
    """Train ``module`` for ``updates`` rollout batches through the runner's own Trainer.

    The spec's env-step budget is set to exactly ``updates`` batches, so ``make_trainer`` gives
    the run its ``max_steps`` as a real run would; the DataModule is seeded with 0.
    """
    spec.config.trainer.env_steps = updates * module.cfg.batch_size * module.rollout_length
    trainer = make_trainer(spec, module, logger, progress=False)
    trainer.fit(module, MetaRLDataModule(seed=0))
    return trainer
