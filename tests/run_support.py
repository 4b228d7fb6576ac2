"""Test support: a short training run through the real runner path, with its logged metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass

from benchmark.run.config import load_run_config
from benchmark.run.runner import FitOutcome, MemoryLogger, fit_and_evaluate


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
