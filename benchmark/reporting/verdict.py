"""A plain verdict on whether algorithm X scores better than baseline Y, and what this many seeds
could have detected.

The inputs are per-seed normalised scores: for each seed, the run's normalised score averaged over
the settings both algorithms were run on. The two samples are compared with Welch's two-sample t
interval for the difference of means, ``d = mean(x) - mean(y)``:

- standard error ``se = sqrt(s_x²/n_x + s_y²/n_y)`` with Welch-Satterthwaite degrees of freedom
  ``df = se⁴ / ((s_x²/n_x)²/(n_x-1) + (s_y²/n_y)²/(n_y-1))`` (``n_x + n_y - 2`` when se = 0);
- 95% CI ``d ± t_{1-α/2, df}·se`` (α = 0.05);
- verdict ``better`` when the CI lies above 0, ``worse`` when it lies below 0, otherwise
  ``no evidence at n=n_x/n_y``; with fewer than 2 seeds on either side there is no interval and
  the verdict is always ``no evidence``;
- the minimum detectable difference ``MDD = (t_{1-α/2, df} + t_{1-β, df})·se`` (power 1-β = 0.8):
  the true difference that this test, at these n and this spread, detects 80% of the time. A
  difference smaller than the MDD that shows "no evidence" is not evidence of no difference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05
POWER = 0.8
METHOD = (
    "Welch two-sample t interval on per-seed normalised scores (each seed's mean over the "
    f"settings both ran); MDD = (t_(1-α/2,df) + t_(power,df))·sqrt(s1²/n1 + s2²/n2) at "
    f"α = {ALPHA}, power = {POWER}"
)


@dataclass(frozen=True)
class Verdict:
    """The outcome of comparing X's scores with Y's."""

    label: str
    """``better``, ``worse`` or ``no evidence at n=n_x/n_y``."""
    difference: float
    """mean(x) - mean(y)."""
    ci_low: float
    """Lower bound of the difference's 95% CI (nan with fewer than 2 seeds on a side)."""
    ci_high: float
    """Upper bound of that CI."""
    mdd: float
    """Minimum detectable difference at α and power (nan with fewer than 2 seeds on a side)."""
    n_x: int
    n_y: int


def welch_df(var_x: float, n_x: int, var_y: float, n_y: int) -> float:
    """Welch-Satterthwaite degrees of freedom (``n_x + n_y - 2`` when both variances are 0).

    Args:
        var_x: sample variance of x (ddof 1).
        n_x: size of x (>= 2).
        var_y: sample variance of y.
        n_y: size of y (>= 2).
    """
    a, b = var_x / n_x, var_y / n_y
    if a + b == 0:
        return float(n_x + n_y - 2)
    return (a + b) ** 2 / (a**2 / (n_x - 1) + b**2 / (n_y - 1))


def minimum_detectable_difference(
    x: Sequence[float], y: Sequence[float], alpha: float = ALPHA, power: float = POWER
) -> float:
    """``(t_{1-α/2,df} + t_{power,df})·sqrt(s_x²/n_x + s_y²/n_y)`` (nan if a side has < 2 values).

    Args:
        x: X's per-seed scores.
        y: Y's per-seed scores.
        alpha: two-sided significance level.
        power: the probability of detecting a true difference of the MDD.
    """
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    if len(xs) < 2 or len(ys) < 2:
        return float("nan")
    var_x, var_y = xs.var(ddof=1), ys.var(ddof=1)
    df = welch_df(var_x, len(xs), var_y, len(ys))
    se = math.sqrt(var_x / len(xs) + var_y / len(ys))
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * se)


def verdict(
    x: Sequence[float], y: Sequence[float], alpha: float = ALPHA, power: float = POWER
) -> Verdict:
    """Whether X is better, worse, or not distinguishable from Y at these seeds.

    Args:
        x: X's per-seed scores (higher is better).
        y: Y's per-seed scores.
        alpha: two-sided significance level of the difference's CI.
        power: the power the minimum detectable difference is stated at.
    """
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    n_x, n_y = len(xs), len(ys)
    difference = float(xs.mean() - ys.mean()) if n_x and n_y else float("nan")
    undecided = f"no evidence at n={n_x}/{n_y}"
    if n_x < 2 or n_y < 2:
        return Verdict(undecided, difference, math.nan, math.nan, math.nan, n_x, n_y)
    var_x, var_y = xs.var(ddof=1), ys.var(ddof=1)
    se = math.sqrt(var_x / n_x + var_y / n_y)
    half = float(stats.t.ppf(1 - alpha / 2, welch_df(var_x, n_x, var_y, n_y)) * se)
    low, high = difference - half, difference + half
    label = "better" if low > 0 else "worse" if high < 0 else undecided
    mdd = minimum_detectable_difference(xs, ys, alpha, power)
    return Verdict(label, difference, low, high, mdd, n_x, n_y)
