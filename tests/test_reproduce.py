"""``metarl-bench reproduce rl2-table1``: settings, budgets, comparison, files, MLflow, errors."""

from __future__ import annotations

import csv
import math

import pytest
from mlflow.tracking import MlflowClient
from store_support import fresh_store

from benchmark import reproduce
from benchmark.cli import main
from benchmark.reproduce import Cell, parse_settings, published_table

REFERENCE = {"10x5": {"Random": 5.0, "UCB1": 6.7}, "100x50": {"UCB1": 84.3, "TS": 64.5}}


def test_published_numbers_ship_with_the_suite():
    table = published_table()
    assert len(table) == 9
    assert all(len(row) == len(reproduce.COLUMNS) for row in table.values())
    for setting, values in REFERENCE.items():
        for column, value in values.items():
            assert table[setting][column] == value
    assert "shared" not in str(reproduce.PUBLISHED_CSV)


def test_settings_are_named_pulls_x_arms():
    assert [s.name for s in parse_settings(None)][:3] == ["10x5", "10x10", "10x50"]
    assert [(s.pulls, s.arms) for s in parse_settings(["500x10", "10x5", "500x10"])] == [
        (500, 10),
        (10, 5),
    ]


def test_every_budget_loads():
    budgets = {name: reproduce.load_budget(name) for name in reproduce.BUDGETS}
    assert budgets["smoke"].trials < budgets["quick"].trials == 1000
    assert budgets["quick"].rl2_pulls == [10]
    assert budgets["paper"].rl2_pulls == [10, 100, 500]


def test_z_combines_our_published_and_rounding_errors():
    cell = Cell("10x5", 10, 5, "UCB1", "ucb1", published=6.7, mean=6.5, stderr=0.1, trials=400)
    std = 0.1 * math.sqrt(400)
    scale = math.sqrt(0.1**2 + (std / math.sqrt(1000)) ** 2 + 0.05**2 / 3)
    assert cell.z == pytest.approx(-0.2 / scale)
    assert not cell.flagged
    far = Cell("10x5", 10, 5, "UCB1", "ucb1", published=6.7, mean=6.0, stderr=0.1, trials=400)
    assert far.flagged
    assert Cell("10x5", 10, 5, "RL2", "rl2", published=6.7, note="not run").z is None


def test_every_flagged_cell_gets_a_footnote_with_no_reason_written_in_the_code():
    below = Cell("10x5", 10, 5, "OTS", "ots", published=6.7, mean=6.0, stderr=0.1, trials=400)
    above = Cell("10x50", 10, 50, "OTS", "ots", published=6.7, mean=7.4, stderr=0.1, trials=400)
    near = Cell("10x10", 10, 10, "OTS", "ots", published=6.7, mean=6.7, stderr=0.1, trials=400)
    rl2 = Cell("10x5", 10, 5, "RL2", "rl2", published=6.7, mean=5.5, stderr=0.1, trials=400)
    refs, texts = reproduce.footnotes([below, above, near, rl2])
    # A deficit and an excess alike are shown, and nothing unmeasured explains them.
    assert texts == [reproduce.UNEXPLAINED]
    assert refs == {("10x5", "OTS"): [1], ("10x50", "OTS"): [1], ("10x5", "RL2"): [1]}
    assert not hasattr(reproduce, "KNOWN_REASONS")
    assert reproduce.format_cell(below, [1]).endswith("⚠ [1]")
    assert reproduce.format_cell(near, []).endswith("+0.0")


def test_best_of_grid_footnote_gives_figures_measured_by_the_same_command():
    budget = reproduce.load_budget("smoke")
    setting = parse_settings(["10x5"])[0]
    cells = reproduce.run_classical([setting], budget, 100, 0, workers=1)
    published = {c.column: c.mean for c in cells} | {"UCB1": 9.5, "Greedy": 9.5, "RL2": 6.7}
    table = reproduce.complete_table([setting], cells, {"10x5": published})
    assert [c.column for c in table if c.flagged] == ["UCB1", "Greedy"]
    best = reproduce.best_of_grid(table, budget, 100, 0, workers=1)
    assert set(best) == {("10x5", "UCB1")}  # flagged and tuned; Greedy has no grid
    scores = {
        c: reproduce.run_job(reproduce.Job("UCB1", "ucb1", setting, (("c", c),), 100, 0, "test"))
        for c in reproduce.TUNING_GRIDS["ucb1"][1]
    }
    top = max(scores, key=lambda c: scores[c][0])
    found, ucb1 = best[("10x5", "UCB1")], table[4]
    assert found.tuned == {"c": top} and found.mean == scores[top][0] >= ucb1.mean
    assert found.stderr == scores[top][1] and found.published == 9.5
    refs, texts = reproduce.footnotes(table, best)
    assert refs == {("10x5", "UCB1"): [1], ("10x5", "Greedy"): [2]}
    assert texts[1] == reproduce.UNEXPLAINED
    assert f"c = {top}, {found.mean:.2f} ± {found.stderr:.2f}, z = {found.z:+.1f}" in texts[0]
    tuned = f"c = {ucb1.tuned['c']} tuned on the `tune` stream: {ucb1.mean:.2f}"
    assert tuned in texts[0]
    markdown = reproduce.format_markdown(table, SMOKE_META, best)
    assert markdown.count("⚠ [") == 2 and "| 9.5 · " in markdown
    assert f"\n[1] {texts[0]}\n[2] {texts[1]}\n" in markdown


SMOKE_META = {
    "command": "metarl-bench reproduce rl2-table1",
    "budget": "smoke",
    "seed": 0,
    "git_commit": "0" * 40,
    "trials": 100,
    "tune_trials": 100,
    "ots_tune_trials": 50,
    "classical_seconds": 1.0,
    "workers": 1,
    "cpu_count": 2,
    "classical_cpu_seconds": 1.0,
}
"""The report's meta fields of a smoke invocation."""


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (
            ["--settings", "7x3"],
            "unknown setting '7x3' for rl2-table1; valid settings (PULLSxARMS)",
        ),
        (["--settings", "10x5", "5x10"], "unknown setting '5x10'"),
        (["--trials", "0"], "--trials must be >= 1, got 0"),
        (["--budget", "huge"], "unknown budget 'huge'; valid budgets: smoke, quick, paper"),
        (["--workers", "0"], "--workers must be >= 1, got 0"),
    ],
)
def test_bad_reproduce_input_is_one_line_exit_2_and_writes_nothing(
    argv, needle, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    code = run_cli(["reproduce", "rl2-table1", "--out", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err
    assert list(tmp_path.iterdir()) == []


def run_cli(argv: list[str]) -> int:
    """The exit status of ``metarl-bench argv`` (argparse errors exit through SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code)


def test_unknown_table_lists_the_valid_ones(capsys):
    assert main(["reproduce", "rl2-table9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown table 'rl2-table9'; valid tables: rl2-table1")
    assert len(err.splitlines()) == 1


def test_smoke_reproduction_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    uri = fresh_store(tmp_path)
    argv = ["reproduce", "rl2-table1", "--budget", "smoke", "--settings", "10x5"]
    code = main([*argv, "--out", "out", "--workers", "1", "--tracking-uri", uri])
    stdout = capsys.readouterr().out
    assert code == 0 and "| 10 | 5 |" in stdout
    with open(tmp_path / "out" / "rl2_table1.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["column"] for row in rows] == [column for column, _ in reproduce.COLUMNS]
    by_column = {row["column"]: row for row in rows}
    for column, strategy in reproduce.COLUMNS:
        row = by_column[column]
        assert float(row["published"]) == published_table()["10x5"][column]
        if strategy is not None:
            assert row["trials"] == "100"
    random = float(by_column["Random"]["mean"]), float(by_column["Random"]["stderr"])
    assert abs(random[0] - 5.0) < 4 * random[1]  # 10 pulls at E[p] = 0.5
    for column in ("Gittins", "TS", "OTS", "UCB1", "eps-Greedy", "Greedy"):
        assert float(by_column[column]["mean"]) > random[0] + 2 * random[1], column
    assert by_column["UCB1"]["tuned"].startswith("c=")
    assert by_column["OTS"]["tuned"].startswith("samples=")
    assert by_column["Gittins"]["tuned"].startswith("discount=")
    rl2 = by_column["RL2"]
    if reproduce.rl2_available():
        assert rl2["run_id"] and rl2["mean"] and rl2["note"].startswith("trained for")
    else:
        assert rl2["note"] == "not run" and rl2["mean"] == ""
    markdown = (tmp_path / "out" / "rl2_table1.md").read_text()
    assert "--budget smoke --trials 100 --settings 10x5" in markdown
    runs = MlflowClient(uri).search_runs(
        [MlflowClient(uri).get_experiment_by_name("reproduce").experiment_id],
        filter_string="tags.table = 'rl2-table1'",
    )
    assert len(runs) == 1
    run = runs[0]
    assert run.data.metrics["10x5/UCB1/mean"] == pytest.approx(float(by_column["UCB1"]["mean"]))
    assert run.data.params["budget"] == "smoke"
    artifacts = {a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id)}
    assert artifacts == {"rl2_table1.md", "rl2_table1.csv"}


@pytest.mark.slow
def test_rl2_column_training_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    algorithm = reproduce.RL2_ALGORITHM if reproduce.rl2_available() else "lstm-a2c"
    budget = reproduce.load_budget("smoke")
    uri = fresh_store(tmp_path)
    settings = parse_settings(["10x5", "100x5"])
    cells = reproduce.rl2_cells(settings, budget, 50, 0, uri, "reproduce", algorithm=algorithm)
    assert [cell.setting for cell in cells] == ["10x5"]  # smoke trains the 10-pull settings only
    cell = cells[0]
    run = MlflowClient(uri).get_run(cell.run_id)
    assert cell.trials == 50 and run.info.status == "FINISHED"
    assert cell.mean == run.data.metrics["eval/mean_total_reward"]
    assert cell.stderr == run.data.metrics["eval/stderr"]


@pytest.mark.slow
def test_worker_processes_give_the_same_cells_as_one_process():
    budget = reproduce.load_budget("smoke")
    settings = parse_settings(["10x10"])
    one = reproduce.run_classical(settings, budget, 100, 0, workers=1)
    two = reproduce.run_classical(settings, budget, 100, 0, workers=2)
    assert [(c.column, c.mean, c.tuned) for c in one] == [(c.column, c.mean, c.tuned) for c in two]
