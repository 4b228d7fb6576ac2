"""``metarl-bench reproduce rl2-table2``: settings, budgets, normalisation, files, MLflow."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from mlflow.tracking import MlflowClient

from benchmark import reproduce_table2 as table2
from benchmark.cli import main


def test_published_numbers_ship_with_the_suite():
    table = table2.published_table()
    assert sorted(table) == [10, 25, 50, 75, 100]
    assert table[10]["PSRL"] == 0.665 and table[100]["OPSRL"] == 0.951
    assert "BEB" not in table[10] and "shared" not in str(table2.PUBLISHED_CSV)


def test_settings_are_episodes_per_trial_and_budgets_load():
    assert table2.parse_settings(None) == [10, 25, 50, 75, 100]
    assert table2.parse_settings(["100", "10", "100"]) == [100, 10]
    budgets = {name: table2.load_budget(name) for name in table2.BUDGETS}
    assert budgets["smoke"].trials < budgets["quick"].trials == budgets["paper"].trials == 1000


def test_grids_follow_the_protocol():
    assert table2.GRIDS["eps-greedy"][1] == tuple(round(0.1 * i, 1) for i in range(1, 11))
    assert table2.GRIDS["opsrl"][1] == tuple(range(1, 21))
    scales = table2.GRIDS["ucrl2"][1]
    assert len(scales) == 21 and scales[0] == 1e-4 and scales[-1] == 1.0
    assert scales[10] == pytest.approx(0.01)


def test_normalised_score_and_its_delta_method_error():
    generator = torch.Generator().manual_seed(0)
    oracle = 20.0 + torch.rand(4000, generator=generator)
    totals = 0.5 * oracle + torch.randn(4000, generator=generator)
    ratio, stderr = table2.normalised_score(totals, oracle)
    assert ratio == pytest.approx(0.5, abs=3 * stderr)
    # The residual noise is N(0, 1), so the SE is about 1 / sqrt(4000) / 20.5.
    assert stderr == pytest.approx(1 / math.sqrt(4000) / 20.5, rel=0.1)


def _row(episodes, random_mean, others):
    """Main cells of one row: Random plus (column, published, ours, ours vs the random policy)."""
    random = table2.Cell(episodes, "Random", "random", 0.482, 0.482 * random_mean, 0.002, 1000)
    cells = [random] + [
        table2.Cell(
            episodes, column, "x", published, mean, 0.002, 1000, vs_random=vs, vs_random_se=0.004
        )
        for column, published, mean, vs in others
    ]
    table2._attach_random(cells, random, 0.482)
    return cells


def test_z_and_footnotes_give_every_flagged_cell_a_measured_reason():
    near = table2.Cell(10, "PSRL", "psrl", 0.665, mean=0.664, stderr=0.004, trials=1000)
    assert not near.flagged
    assert table2.Cell(10, "BEB", "beb", None, mean=0.7, stderr=0.01, trials=9).z is None
    # Random at 0.95 of the published value; PSRL off by the same factor; UCRL2 off by more.
    table = _row(10, 0.95, [("PSRL", 0.665, 0.632, 0.665 / 0.482), ("UCRL2", 0.706, 0.6, 1.3)])
    assert all(cell.flagged for cell in table)
    assert abs(table[1].rescaled_z) < 0.1 and table[2].rescaled_z < -3
    refs, texts = table2.footnotes(table, random_ratio=(0.4577, 0.0004))
    assert refs == {(10, "Random"): 1, (10, "PSRL"): 2, (10, "UCRL2"): 3}
    assert "0.4577 ± 0.0004" in texts[0]
    assert "0.950 to 0.950" in texts[1] and texts[2].startswith("Unexplained")
    assert table2.format_cell(table[0], 1).endswith("⚠ [1]")


def test_rescaled_value_and_its_error():
    random, cell = _row(25, 0.95, [("PSRL", 0.788, 0.74, 1.6)])
    assert cell.rescaled == pytest.approx(1.6 * 0.482)
    # Its SE combines ours (0.004 * 0.482) with the published Random value's 1000-trial SE.
    published_random_se = math.hypot(0.002, table2.ROUNDING_SD)
    expected = math.hypot(0.004 * 0.482, cell.rescaled * published_random_se / 0.482)
    assert cell.rescaled_se == pytest.approx(expected)
    assert table2.Cell(25, "BEB", "beb", None, 0.8, 0.002, 1000, vs_random=1.7).rescaled is None


def test_eps_greedy_footnote_needs_the_decaying_diagnostic_within_3_se():
    table = _row(100, 0.95, [("eps-Greedy", 0.857, 0.79, 0.79 / 0.457)])
    assert table[1].rescaled_z < -3
    name = table2.DIAGNOSTICS[0][0]
    diagnostic = table2.Cell(100, name, "eps-greedy", 0.857, 0.81, 0.002, 1000, vs_random=1.778)
    diagnostic.vs_random_se = 0.004
    table2._attach_random([diagnostic], table[0], 0.482)
    refs, texts = table2.footnotes(table, [diagnostic], (0.4577, 0.0004))
    assert refs[(100, "eps-Greedy")] == 2 and "eps / sqrt(k)" in texts[1]
    assert "at 100 episodes" in texts[1]
    diagnostic.vs_random = 1.6  # the diagnostic misses too: no decay claim
    _, texts = table2.footnotes(table, [diagnostic], (0.4577, 0.0004))
    assert texts[1].startswith("Unexplained")


def test_documented_generator_random_ratio_is_measured_not_published():
    ratio, stderr = table2.documented_random_ratio(0, mdps=4000)
    assert ratio == pytest.approx(0.458, abs=4 * stderr) and stderr < 0.002
    assert abs(ratio - 0.482) > 5 * stderr


def test_bad_settings_are_one_line_and_exit_2(tracking_uri, tmp_path, capsys):
    code = main(["reproduce", "rl2-table2", "--settings", "11", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "unknown setting '11'" in err and "10, 25, 50, 75, 100" in err
    assert not (tmp_path / "o").exists()


def test_smoke_budget_end_to_end(tracking_uri, tmp_path, capsys, monkeypatch):
    # Two values per grid keep the default test run short; the grids themselves are tested above.
    short = {name: (param, grid[:1] + grid[-1:]) for name, (param, grid) in table2.GRIDS.items()}
    monkeypatch.setattr(table2, "GRIDS", short)
    out = tmp_path / "results"
    argv = ["reproduce", "rl2-table2", "--budget", "smoke", "--settings", "10"]
    code = main([*argv, "--trials", "40", "--workers", "1", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| 10 | 0.482 · " in printed and "0.752 · not run" in printed
    with open(out / "rl2_table2.csv", newline="") as handle:
        rows = {row["column"]: row for row in csv.DictReader(handle)}
    diagnostic = table2.DIAGNOSTICS[0][0]
    assert list(rows) == [column for column, _ in table2.COLUMNS] + [diagnostic]
    assert rows[diagnostic]["tuned"].startswith("eps=") and rows[diagnostic]["rescaled_z"]
    assert "## Rescaled by the Random column" in (out / "rl2_table2.md").read_text()
    assert 0.3 < float(rows["Random"]["mean"]) < 0.6 and rows["Random"]["trials"] == "40"
    assert float(rows["PSRL"]["mean"]) > float(rows["Random"]["mean"])
    assert rows["OPSRL"]["tuned"].startswith("samples=") and rows["RL2"]["note"] == "not run"
    run = MlflowClient(tracking_uri).search_runs(
        [MlflowClient(tracking_uri).get_experiment_by_name("reproduce").experiment_id]
    )[0]
    assert run.data.tags["table"] == "rl2-table2"
    assert run.data.metrics["10/PSRL/mean"] == pytest.approx(float(rows["PSRL"]["mean"]))
