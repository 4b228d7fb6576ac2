"""``metarl-bench reproduce rl2-table2``: settings, budgets, normalisation, files, MLflow."""

from __future__ import annotations

import csv
import math
from dataclasses import replace

import pytest
import torch
from mlflow.tracking import MlflowClient

from benchmark.cli import main
from benchmark.run.tuning import grid_of
from benchmark.studies import compare, render
from benchmark.studies.cells import Cell, Results
from benchmark.studies.classical import normalised_score
from benchmark.studies.inputs import load_budget, parse_settings, published_table
from benchmark.studies.rl2_table2 import RANDOM_RATIO, SPEC, documented_random_ratio

EVIDENCE = {RANDOM_RATIO: (0.4577, 0.0004)}


def test_published_numbers_ship_with_the_suite():
    table = published_table(SPEC)
    assert list(table) == ["10", "25", "50", "75", "100"]
    assert table["10"]["PSRL"] == 0.665 and table["100"]["OPSRL"] == 0.951
    assert "BEB" not in table["10"] and "shared" not in str(SPEC.published_path)


def test_settings_are_episodes_per_trial_and_budgets_load():
    assert [s.name for s in parse_settings(SPEC, None)] == ["10", "25", "50", "75", "100"]
    assert [s.task() for s in parse_settings(SPEC, ["100", "10", "100"])] == [
        {"episodes": 100},
        {"episodes": 10},
    ]
    budgets = {name: load_budget(SPEC, name) for name in ("smoke", "quick", "paper")}
    assert budgets["smoke"].trials < budgets["quick"].trials == budgets["paper"].trials == 1000


def test_grids_follow_the_protocol():
    assert grid_of("eps-greedy", SPEC.family).values == tuple(
        round(0.1 * i, 1) for i in range(1, 11)
    )
    assert grid_of("opsrl", SPEC.family).values == tuple(range(1, 21))
    scales = grid_of("ucrl2", SPEC.family).values
    assert len(scales) == 21 and scales[0] == 1e-4 and scales[-1] == 1.0
    assert scales[10] == pytest.approx(0.01) and grid_of("beb", SPEC.family).values == scales
    assert grid_of("psrl", SPEC.family) is None


def test_normalised_score_and_its_delta_method_error():
    generator = torch.Generator().manual_seed(0)
    oracle = 20.0 + torch.rand(4000, generator=generator)
    totals = 0.5 * oracle + torch.randn(4000, generator=generator)
    ratio, stderr = normalised_score(totals, oracle)
    assert ratio == pytest.approx(0.5, abs=3 * stderr)
    # The residual noise is N(0, 1), so the SE is about 1 / sqrt(4000) / 20.5.
    assert stderr == pytest.approx(1 / math.sqrt(4000) / 20.5, rel=0.1)


def cell(episodes: int, column: str, mean: float | None = None, **values) -> Cell:
    """An uncompared Table 2 cell of ``column`` at ``episodes`` (1000 trials, SE 0.002)."""
    setting = parse_settings(SPEC, [str(episodes)])[0]
    values = {"stderr": 0.002, "trials": 1000} | values
    return Cell(setting, column, SPEC.column(column).strategy, mean=mean, **values)


def _row(episodes, random_mean, others):
    """Main cells of one row, compared with ``published`` for the columns named in ``others``:
    Random plus (column, published, ours, ours vs the random policy)."""
    random = cell(episodes, "Random", 0.482 * random_mean)
    cells = [random] + [
        cell(episodes, column, mean, vs_random=vs, vs_random_se=0.004)
        for column, _, mean, vs in others
    ]
    values = {"Random": 0.482} | {column: published for column, published, _, _ in others}
    return compare.compare_row(SPEC, cells, {c.key: c for c in cells}, values)


def test_z_and_footnotes_give_every_flagged_cell_a_measured_reason():
    (near,) = _row(10, 1.0, [("PSRL", 0.665, 0.664, 1.4)])[1:]
    assert not near.flagged
    assert cell(10, "BEB", mean=0.7, stderr=0.01, trials=9).z is None
    # Random at 0.95 of the published value; PSRL off by the same factor; UCRL2 off by more.
    table = _row(10, 0.95, [("PSRL", 0.665, 0.632, 0.665 / 0.482), ("UCRL2", 0.706, 0.6, 1.3)])
    assert all(cell.flagged for cell in table)
    assert abs(table[1].rescaled_z) < 0.1 and table[2].rescaled_z < -3
    refs, texts = compare.footnotes(SPEC, Results(table, evidence=EVIDENCE))
    assert refs == {("10", "Random"): 1, ("10", "PSRL"): 2, ("10", "UCRL2"): 3}
    assert "0.4577 ± 0.0004" in texts[0]
    assert "0.950 to 0.950" in texts[1] and texts[2].startswith("Unexplained")
    assert render.format_cell(SPEC, table[0], 1).endswith("⚠ [1]")


def test_rescaled_value_and_its_error():
    random, psrl = _row(25, 0.95, [("PSRL", 0.788, 0.74, 1.6)])
    assert psrl.rescaled == pytest.approx(1.6 * 0.482)
    # Its SE combines ours (0.004 * 0.482) with the published Random value's 1000-trial SE.
    published_random_se = math.hypot(0.002, SPEC.rounding_sd)
    expected = math.hypot(0.004 * 0.482, psrl.rescaled * published_random_se / 0.482)
    assert psrl.rescaled_se == pytest.approx(expected)
    assert cell(25, "BEB", 0.8, vs_random=1.7).rescaled is None


def test_eps_greedy_footnote_needs_the_decaying_diagnostic_within_3_se():
    table = _row(100, 0.95, [("eps-Greedy", 0.857, 0.79, 0.79 / 0.457)])
    assert table[1].rescaled_z < -3
    name = SPEC.diagnostics[0].name
    diagnostic = cell(100, name, 0.81, vs_random=1.778, vs_random_se=0.004)
    compare.compare_row(
        SPEC, [diagnostic], {table[0].key: table[0]}, {"Random": 0.482, "eps-Greedy": 0.857}
    )
    refs, texts = compare.footnotes(SPEC, Results(table, [diagnostic], EVIDENCE))
    assert refs[("100", "eps-Greedy")] == 2 and "eps / sqrt(k)" in texts[1]
    assert "at 100 episodes" in texts[1]
    diagnostic.vs_random = 1.6  # the diagnostic misses too: no decay claim
    _, texts = compare.footnotes(SPEC, Results(table, [diagnostic], EVIDENCE))
    assert texts[1].startswith("Unexplained")


def test_documented_generator_random_ratio_is_measured_not_published():
    ratio, stderr = documented_random_ratio(0, mdps=4000)
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
    def short_grid(strategy, family):
        grid = full_grid(strategy, family)
        return grid and replace(grid, values=grid.values[:1] + grid.values[-1:])

    from benchmark.studies import classical

    full_grid = grid_of
    monkeypatch.setattr(classical, "grid_of", short_grid)
    out = tmp_path / "results"
    argv = ["reproduce", "rl2-table2", "--budget", "smoke", "--settings", "10"]
    code = main([*argv, "--trials", "40", "--workers", "1", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| 10 | 0.482 · " in printed and "| 0.752 · " in printed
    with open(out / "rl2_table2.csv", newline="") as handle:
        rows = {row["column"]: row for row in csv.DictReader(handle)}
    diagnostic = SPEC.diagnostics[0].name
    assert list(rows) == [column.name for column in SPEC.columns] + [diagnostic]
    assert rows[diagnostic]["tuned"].startswith("eps=") and rows[diagnostic]["rescaled_z"]
    markdown = (out / "rl2_table2.md").read_text()
    assert "## Rescaled by the Random column" in markdown
    assert "## RL² against OPSRL: the published ordering" in markdown
    assert 0.3 < float(rows["Random"]["mean"]) < 0.6 and rows["Random"]["trials"] == "40"
    assert float(rows["PSRL"]["mean"]) > float(rows["Random"]["mean"])
    assert rows["OPSRL"]["tuned"].startswith("samples=")
    # The learned columns (smoke: one seed of 2000 env steps): normalised, raw and rescaled.
    for column in ("RL2", "LSTM-A2C"):
        learned = rows[column]
        assert learned["seeds"] == "0" and learned["trials"] == "40"
        ratio = float(learned["mean"]) / float(learned["vs_random"])  # our random / oracle
        factor = ratio / float(learned["random_published"])
        assert float(learned["rescaled"]) == pytest.approx(float(learned["mean"]) / factor, 1e-4)
    run = MlflowClient(tracking_uri).search_runs(
        [MlflowClient(tracking_uri).get_experiment_by_name("reproduce").experiment_id]
    )[0]
    assert run.data.tags["table"] == "rl2-table2"
    assert run.data.metrics["10/PSRL/mean"] == pytest.approx(float(rows["PSRL"]["mean"]))
