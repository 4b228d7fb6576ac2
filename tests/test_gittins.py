"""Gittins indices: calibration check value, structure, table accuracy and the on-disk cache."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.classical import gittins
from baselines.classical.gittins import (
    default_truncation,
    gittins_index,
    gittins_table,
    table_path,
)


def test_check_value_beta_3_2():
    assert gittins_index(3, 2, 0.8, 20) == pytest.approx(0.6714, abs=1e-4)


@pytest.mark.parametrize("alpha,beta", [(1, 1), (3, 2), (1, 9), (9, 1), (20, 30)])
@pytest.mark.parametrize("discount", [0.5, 0.9])
def test_index_between_posterior_mean_and_one(alpha, beta, discount):
    index = gittins_index(alpha, beta, discount, 30)
    assert alpha / (alpha + beta) < index < 1.0


def test_index_increases_with_successes_and_decreases_with_failures():
    grid = np.array([[gittins_index(1 + s, 1 + f, 0.9, 25) for f in range(5)] for s in range(5)])
    assert (np.diff(grid, axis=0) > 0).all()
    assert (np.diff(grid, axis=1) < 0).all()


def test_longer_truncation_never_lowers_the_index():
    values = [gittins_index(2, 3, 0.9, t) for t in (1, 5, 20, 60)]
    assert values == sorted(values)
    # Truncating after one pull leaves only the immediate reward plus the retire-or-commit value.
    assert values[-1] - values[0] > 1e-3


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="discount"):
        gittins_index(1, 1, 1.0, 10)
    with pytest.raises(ValueError, match="truncation"):
        gittins_index(1, 1, 0.9, 0)
    with pytest.raises(ValueError, match="positive"):
        gittins_index(0, 1, 0.9, 10)


def test_default_truncation_grows_with_the_horizon_and_is_capped():
    assert default_truncation(0.9) == 50
    assert default_truncation(0.99) == 500
    assert default_truncation(0.999) == default_truncation(0.9999) == 1000


def test_table_matches_exact_calibration_and_is_monotone(tmp_path):
    discount, truncation, max_pulls = 0.9, 20, 12
    table = gittins_table(discount, truncation, cache_dir=tmp_path, max_pulls=max_pulls)
    assert table.shape == (max_pulls + 1, max_pulls + 1)
    s, f = np.indices(table.shape)
    inside = s + f <= max_pulls
    assert np.isnan(table[~inside]).all() and np.isfinite(table[inside]).all()
    for cell in zip(s[inside], f[inside], strict=True):
        horizon = max_pulls + truncation - sum(cell)
        exact = gittins_index(1 + cell[0], 1 + cell[1], discount, horizon)
        assert table[cell] == pytest.approx(exact, abs=1e-6)
    assert (table[inside] > ((1 + s) / (2 + s + f))[inside]).all()
    assert (np.diff(table, axis=0)[inside[1:] & inside[:-1]] > 0).all()
    assert (np.diff(table, axis=1)[inside[:, 1:] & inside[:, :-1]] < 0).all()


def test_table_accuracy_at_a_high_discount(tmp_path):
    discount, truncation, max_pulls = 0.99, 60, 80
    table = gittins_table(discount, truncation, cache_dir=tmp_path, max_pulls=max_pulls)
    for s, f in [(0, 0), (80, 0), (0, 80), (40, 40), (7, 31), (60, 3)]:
        exact = gittins_index(1 + s, 1 + f, discount, max_pulls + truncation - s - f)
        assert table[s, f] == pytest.approx(exact, abs=2e-5)


def test_cache_round_trip_serves_the_second_call_from_disk(tmp_path, monkeypatch):
    first = gittins_table(0.8, 15, cache_dir=tmp_path, max_pulls=8)
    path = table_path(0.8, 15, 8, tmp_path)
    assert path.exists()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]

    def refuse(*args, **kwargs):
        raise AssertionError("the table should have been read from the cache")

    monkeypatch.setattr(gittins, "_compute_table", refuse)
    second = gittins_table(0.8, 15, cache_dir=tmp_path, max_pulls=8)
    np.testing.assert_array_equal(first, second)
    with pytest.raises(AssertionError, match="cache"):
        gittins_table(0.8, 16, cache_dir=tmp_path, max_pulls=8)


def test_cache_keys_differ_per_parameter(tmp_path):
    names = {
        table_path(d, t, m, tmp_path).name
        for d, t, m in [(0.9, 50, 500), (0.99, 50, 500), (0.9, 60, 500), (0.9, 50, 100)]
    }
    assert len(names) == 4


def test_default_cache_dir_follows_metarl_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("METARL_CACHE", str(tmp_path))
    gittins_table(0.7, 5, max_pulls=3)
    assert table_path(0.7, 5, 3, tmp_path / "gittins").exists()
