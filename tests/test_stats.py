"""The table statistics against small hand-computed cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from benchmark.reporting import stats


def test_mean_ci_is_the_student_t_interval():
    mean, half = stats.mean_ci([1.0, 2.0, 3.0])
    # sd = 1, sem = 1/sqrt(3), t(0.975, 2) = 4.302653
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert math.isnan(stats.mean_ci([5.0])[1])


def test_iqm_pools_settings_and_trims_a_quarter_each_side():
    # Pooled and sorted: 0.0 0.1 0.2 0.3 0.5 0.6 0.7 0.9; the middle four average to 0.4.
    scores = [[0.1, 0.2, 0.3, 0.9], [0.5, 0.6, 0.7, 0.0]]
    assert stats.pooled_iqm(scores) == pytest.approx(0.4)
    # With 4 values, the IQM is the mean of the middle two.
    assert stats.pooled_iqm([[4.0, 1.0, 3.0, 100.0]]) == pytest.approx(3.5)


def test_probability_of_improvement_counts_ties_half_and_averages_settings():
    # Setting 1: X=[1,2] vs Y=[0,3]: 1>0, 1<3, 2>0, 2<3 -> 2/4 = 0.5.
    # Setting 2: X=[5,5] vs Y=[5,4]: tie, win, tie, win -> (0.5+1+0.5+1)/4 = 0.75.
    x = [[1.0, 2.0], [5.0, 5.0]]
    y = [[0.0, 3.0], [5.0, 4.0]]
    assert stats.probability_of_improvement(x, y) == pytest.approx(0.625)
    assert stats.probability_of_improvement(y, x) == pytest.approx(0.375)


def test_bootstrap_cis_bracket_the_estimate_and_are_reproducible():
    rng = np.random.default_rng(0)
    scores = [rng.normal(0.5, 0.1, 5), rng.normal(0.7, 0.1, 5), rng.normal(0.2, 0.1, 5)]
    estimate, low, high = stats.iqm_ci(scores, seed=3)
    assert low < estimate < high
    assert (estimate, low, high) == stats.iqm_ci(scores, seed=3)
    x = [s + 0.05 for s in scores]
    p, p_low, p_high = stats.probability_of_improvement_ci(x, scores, seed=3)
    assert 0.0 <= p_low <= p <= p_high <= 1.0
    assert p > 0.5


def test_bootstrap_is_stratified_by_setting():
    # Each setting holds identical seeds, so any resampling within settings changes nothing:
    # a stratified bootstrap has a zero-width CI (a pooled one would not).
    scores = [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]]
    estimate, low, high = stats.iqm_ci(scores)
    assert estimate == pytest.approx(0.375)
    assert low == pytest.approx(0.375) and high == pytest.approx(0.375)


def test_single_seed_settings_have_no_ci():
    estimate, low, high = stats.iqm_ci([[0.2], [0.4]])
    assert estimate == pytest.approx(0.3)
    assert math.isnan(low) and math.isnan(high)


def test_distinct_resamples_counts_multisets():
    for seeds in (2, 3, 5):
        multisets = itertools.combinations_with_replacement(range(seeds), seeds)
        assert stats.distinct_resamples(seeds) == len(list(multisets))


def test_three_separated_seeds_give_a_degenerate_interval_that_is_marked():
    # Every run of X beats every run of Y in both settings: every resample does too.
    x, y = [[0.9, 0.8, 0.7], [0.6, 0.7, 0.8]], [[0.1, 0.2, 0.3], [0.0, 0.5, 0.4]]
    estimate, low, high = stats.probability_of_improvement_ci(x, y)
    assert estimate == low == high == 1.0
    assert stats.bootstrap_caveat([3, 3, 3, 3], low, high) == (
        "n too small: 3 seeds in a setting, 10 distinct resamples; "
        "zero width: every resample gave the same value"
    )
    rng = np.random.default_rng(1)
    five = [rng.normal(0.5, 0.1, 5), rng.normal(0.6, 0.1, 5)]
    estimate, low, high = stats.iqm_ci(five)
    assert low < high and stats.bootstrap_caveat([5, 5], low, high) == ""
    assert stats.bootstrap_caveat([5, 4], low, high).startswith("n too small: 4 seeds")
    assert stats.bootstrap_caveat([1, 1], *stats.iqm_ci([[0.2], [0.4]])[1:]) == ""  # no CI


def test_point_estimates_agree_with_rliable():
    metrics = pytest.importorskip("rliable.metrics")
    rng = np.random.default_rng(7)
    # runs x tasks, rounded so that ties occur; X and Y with different numbers of runs.
    x = np.round(rng.normal(0.6, 0.2, (5, 4)), 1)
    y = np.round(rng.normal(0.5, 0.2, (3, 4)), 1)
    y[:, 2] = x[:3, 2]  # a task where Y's runs repeat some of X's
    x[0, 0] = 5.0  # an outlier the IQM trims (the plain mean would move by 0.22)
    assert stats.pooled_iqm(list(x.T)) == pytest.approx(metrics.aggregate_iqm(x))
    ours = stats.probability_of_improvement(list(x.T), list(y.T))
    assert ours == pytest.approx(metrics.probability_of_improvement(x, y))
    assert stats.probability_of_improvement(list(x.T), list(x.T)) == pytest.approx(
        metrics.probability_of_improvement(x, x)
    )
