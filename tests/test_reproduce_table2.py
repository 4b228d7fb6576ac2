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


def test_z_and_known_reason_footnotes():
    far = table2.Cell(10, "Random", "random", 0.482, mean=0.457, stderr=0.002, trials=1000)
    near = table2.Cell(10, "PSRL", "psrl", 0.665, mean=0.664, stderr=0.004, trials=1000)
    assert far.flagged and not near.flagged
    assert table2.Cell(10, "BEB", "beb", None, mean=0.7, stderr=0.01, trials=9).z is None
    refs, texts = table2.footnotes([far, near])
    assert refs == {(10, "Random"): 1} and "0.457" in texts[0]
    assert table2.format_cell(far, 1).endswith("⚠ [1]")


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
    assert list(rows) == [column for column, _ in table2.COLUMNS]
    assert 0.3 < float(rows["Random"]["mean"]) < 0.6 and rows["Random"]["trials"] == "40"
    assert float(rows["PSRL"]["mean"]) > float(rows["Random"]["mean"])
    assert rows["OPSRL"]["tuned"].startswith("samples=") and rows["RL2"]["note"] == "not run"
    run = MlflowClient(tracking_uri).search_runs(
        [MlflowClient(tracking_uri).get_experiment_by_name("reproduce").experiment_id]
    )[0]
    assert run.data.tags["table"] == "rl2-table2"
    assert run.data.metrics["10/PSRL/mean"] == pytest.approx(float(rows["PSRL"]["mean"]))
