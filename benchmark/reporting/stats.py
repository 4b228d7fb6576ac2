"""Statistics of comparison tables, after Agarwal et al. 2021 ("Deep RL at the edge of the
statistical precipice", the rliable library).

- Per task setting: mean over seeds with a Student-t 95% confidence interval (n seeds stated).
- Across settings: the interquartile mean (IQM) of normalised scores over all runs, and the
  probability of improvement P(X > Y), each with a 95% stratified-bootstrap confidence interval:
  seeds are resampled with replacement within each setting (the strata), independently, by
  ``scipy.stats.bootstrap`` (percentile method). With fewer than :data:`MIN_BOOTSTRAP_SEEDS` seeds
  in a setting such an interval carries a caveat (:func:`bootstrap_caveat`): n seeds have only
  C(2n - 1, n) distinct resamples (10 for n = 3), and where X's seeds all beat Y's in every
  setting each resample does too, so P(X > Y)'s interval is [1, 1] whatever the true spread.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000
T_INTERVAL = "Student t interval over seeds"
BOOTSTRAP = (
    "stratified bootstrap over seeds within settings "
    f"(scipy.stats.bootstrap, percentile, {RESAMPLES} resamples)"
)
MIN_BOOTSTRAP_SEEDS = 5
"""Fewest seeds in every setting for which a bootstrap interval is reported without a caveat."""


def mean_ci(values: Sequence[float] | np.ndarray, axis: int = -1) -> tuple[Any, Any]:
    """The mean and the half-width of its 95% Student-t confidence interval (nan if n < 2).

    Args:
        values: one value per seed along ``axis``.
        axis: the seeds' axis (other axes are kept, e.g. the steps of a curve).
    """
    data = np.asarray(values, dtype=float)
    mean = data.mean(axis=axis)
    seeds = data.shape[axis]
    if seeds < 2:
        return mean, np.full_like(mean, np.nan)
    sem = data.std(axis=axis, ddof=1) / np.sqrt(seeds)
    return mean, stats.t.ppf(0.5 + CONFIDENCE / 2, seeds - 1) * sem


def iqm(values: Sequence[float] | np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """The interquartile mean: the mean of the middle 50% (25% trimmed from each end).

    Args:
        values: scores.
        axis: the axis to reduce (None: all values).
    """
    return stats.trim_mean(values, 0.25, axis=axis)


def pooled_iqm(scores_by_setting: Sequence[Sequence[float]]) -> float:
    """IQM of the normalised scores of every run, pooled over settings.

    Args:
        scores_by_setting: for each setting, the scores of its seeds.
    """
    return float(iqm(np.concatenate([np.asarray(s, float) for s in scores_by_setting])))


def probability_of_improvement(
    x_by_setting: Sequence[Sequence[float]], y_by_setting: Sequence[Sequence[float]]
) -> float:
    """P(X > Y): per setting, the chance that a run of X beats a run of Y (ties count half),
    averaged over settings (the Mann-Whitney U statistic over n*m, as in rliable).

    Args:
        x_by_setting: X's scores per setting.
        y_by_setting: Y's scores per setting, in the same setting order.
    """
    pairs = zip(x_by_setting, y_by_setting, strict=True)
    return float(np.mean([_beats(np.asarray(x, float), np.asarray(y, float)) for x, y in pairs]))


def _beats(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(x > y) + 0.5 P(x == y) over all pairs, vectorised over leading axes."""
    greater = (x[..., :, None] > y[..., None, :]).mean(axis=(-2, -1))
    ties = (x[..., :, None] == y[..., None, :]).mean(axis=(-2, -1))
    return greater + 0.5 * ties


def iqm_ci(
    scores_by_setting: Sequence[Sequence[float]], seed: int = 0
) -> tuple[float, float, float]:
    """IQM with its 95% stratified-bootstrap CI; the CI is nan if a setting has fewer than 2 seeds.

    Args:
        scores_by_setting: for each setting, the normalised scores of its seeds.
        seed: seed of the bootstrap resampling (tables are reproducible).
    """
    samples = [np.asarray(s, float) for s in scores_by_setting]

    def statistic(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        return iqm(np.concatenate(resampled, axis=axis), axis=axis)

    return (pooled_iqm(samples), *_bootstrap(samples, statistic, seed))


def probability_of_improvement_ci(
    x_by_setting: Sequence[Sequence[float]],
    y_by_setting: Sequence[Sequence[float]],
    seed: int = 0,
) -> tuple[float, float, float]:
    """P(X > Y) with its 95% stratified-bootstrap CI (X's and Y's seeds resampled per setting).

    Args:
        x_by_setting: X's scores per setting.
        y_by_setting: Y's scores per setting, in the same order.
        seed: seed of the bootstrap resampling.
    """
    xs = [np.asarray(s, float) for s in x_by_setting]
    ys = [np.asarray(s, float) for s in y_by_setting]
    count = len(xs)

    def statistic(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        moved = [np.moveaxis(sample, axis, -1) for sample in resampled]
        per_setting = [_beats(moved[i], moved[count + i]) for i in range(count)]
        return np.mean(per_setting, axis=0)

    estimate = probability_of_improvement(xs, ys)
    return (estimate, *_bootstrap([*xs, *ys], statistic, seed))


def _bootstrap(samples: list[np.ndarray], statistic, seed: int) -> tuple[float, float]:
    if any(sample.size < 2 for sample in samples):
        return float("nan"), float("nan")
    with warnings.catch_warnings():  # identical resamples (a degenerate CI) are a valid answer
        warnings.simplefilter("ignore")
        result = stats.bootstrap(
            tuple(samples),
            statistic,
            n_resamples=RESAMPLES,
            confidence_level=CONFIDENCE,
            method="percentile",
            vectorized=True,
            rng=np.random.default_rng(seed),
        )
    interval = result.confidence_interval
    return float(interval.low), float(interval.high)


def distinct_resamples(seeds: int) -> int:
    """How many different multisets a resample with replacement of ``seeds`` values can be."""
    return math.comb(2 * seeds - 1, seeds)


def bootstrap_caveat(seeds_per_setting: Sequence[int], low: float, high: float) -> str:
    """The caveats of a stratified-bootstrap interval, "" when none applies.

    Args:
        seeds_per_setting: the seeds (runs) of each stratum the statistic resampled.
        low: the interval's lower bound (nan when none was computed).
        high: its upper bound.
    """
    if math.isnan(low):
        return ""
    fewest, caveats = min(seeds_per_setting), []
    if fewest < MIN_BOOTSTRAP_SEEDS:
        resamples = distinct_resamples(fewest)
        caveats.append(f"n too small: {fewest} seeds in a setting, {resamples} distinct resamples")
    if low == high:
        caveats.append("zero width: every resample gave the same value")
    return "; ".join(caveats)
