"""The verdict and the minimum detectable difference on constructed per-seed scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from benchmark.reporting.verdict import minimum_detectable_difference, verdict, welch_df


def test_clearly_better_and_clearly_worse():
    x = [0.90, 0.92, 0.88, 0.91, 0.89]
    y = [0.10, 0.12, 0.08, 0.11, 0.09]
    better = verdict(x, y)
    assert better.label == "better"
    assert better.difference == pytest.approx(0.8)
    assert 0 < better.ci_low < 0.8 < better.ci_high
    worse = verdict(y, x)
    assert worse.label == "worse" and worse.ci_high < 0
    assert better.mdd == pytest.approx(worse.mdd) and 0 < better.mdd < 0.1


def test_too_few_seeds_give_no_evidence_and_a_large_mdd():
    # A real gap of 0.3, but two noisy seeds per side cannot show it.
    x, y = [0.9, 0.3], [0.2, 0.4]
    result = verdict(x, y)
    assert result.label == "no evidence at n=2/2"
    assert result.ci_low < 0 < result.ci_high
    assert result.mdd > abs(result.difference)
    single = verdict([0.9], [0.1, 0.2, 0.15])
    assert single.label == "no evidence at n=1/3"
    assert math.isnan(single.mdd) and math.isnan(single.ci_low)


def test_the_interval_is_welchs_and_the_mdd_follows_the_formula():
    rng = np.random.default_rng(3)
    x, y = rng.normal(0.5, 0.1, 6), rng.normal(0.45, 0.2, 4)
    reference = stats.ttest_ind(x, y, equal_var=False).confidence_interval(0.95)
    result = verdict(x, y)
    assert result.ci_low == pytest.approx(reference.low)
    assert result.ci_high == pytest.approx(reference.high)
    df = welch_df(x.var(ddof=1), 6, y.var(ddof=1), 4)
    se = math.sqrt(x.var(ddof=1) / 6 + y.var(ddof=1) / 4)
    expected = (stats.t.ppf(0.975, df) + stats.t.ppf(0.8, df)) * se
    assert minimum_detectable_difference(x, y) == pytest.approx(expected)
    # More seeds of the same spread detect a smaller difference.
    assert minimum_detectable_difference(np.tile(x, 4), np.tile(y, 4)) < expected
