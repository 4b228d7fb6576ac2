"""``metarl-bench reproduce rl2-table1``: settings, budgets, comparison, files, MLflow, errors."""

from __future__ import annotations

import csv
import math

import pytest
from mlflow.tracking import MlflowClient
from store_support import fresh_store

from benchmark.cli import main
from benchmark.run.tuning import grid_of
from benchmark.studies import classical, compare, render
from benchmark.studies.cells import Cell, Results
from benchmark.studies.inputs import load_budget, parse_settings, published_table
from benchmark.studies.learned import learned_cells
from benchmark.studies.ledger import train_missing
from benchmark.studies.pipeline import start_run
from benchmark.studies.rl2_table1 import BEST_OF_GRID, SPEC, measure_best_of_grid

REFERENCE = {"10x5": {"Random": 5.0, "UCB1": 6.7}, "100x50": {"UCB1": 84.3, "TS": 64.5}}
COLUMNS = [column.name for column in SPEC.columns]


def test_published_numbers_ship_with_the_suite():
    table = published_table(SPEC)
    assert len(table) == 9
    unpublished = ["LSTM-A2C"]  # Wang et al.'s algorithm was not run on RL²'s settings
    assert all(list(row) == [c for c in COLUMNS if c not in unpublished] for row in table.values())
    for setting, values in REFERENCE.items():
        for column, value in values.items():
            assert table[setting][column] == value
    assert "shared" not in str(SPEC.published_path)


def test_settings_are_named_pulls_x_arms():
    assert [s.name for s in parse_settings(SPEC, None)][:3] == ["10x5", "10x10", "10x50"]
    picked = parse_settings(SPEC, ["500x10", "10x5", "500x10"])
    assert [s.task() for s in picked] == [{"pulls": 500, "arms": 10}, {"pulls": 10, "arms": 5}]


def test_every_budget_loads():
    budgets = {name: load_budget(SPEC, name) for name in ("smoke", "quick", "paper")}
    assert budgets["smoke"].trials < budgets["quick"].trials == 1000
    assert budgets["quick"].learned_settings == ["10x5", "10x10", "10x50"]
    assert budgets["paper"].learned_settings == [s.name for s in parse_settings(SPEC, None)]
    assert budgets["smoke"].seeds == [0, 1] and budgets["paper"].seeds == [0, 1, 2]
    assert budgets["smoke"].tune_trials_for("ots") < budgets["smoke"].tune_trials_for("ucb1")


def cell(setting: str, column: str, **values) -> Cell:
    """A Table 1 cell of ``setting`` (PULLSxARMS) compared with a published value."""
    row = parse_settings(SPEC, [setting])[0]
    strategy = SPEC.column(column).strategy or "rl2"
    return Cell(row, column, strategy, rounding_sd=SPEC.rounding_sd, **values)


def test_z_combines_our_published_and_rounding_errors():
    ucb1 = cell("10x5", "UCB1", published=6.7, mean=6.5, stderr=0.1, trials=400)
    std = 0.1 * math.sqrt(400)
    scale = math.sqrt(0.1**2 + (std / math.sqrt(1000)) ** 2 + 0.05**2 / 3)
    assert ucb1.z == pytest.approx(-0.2 / scale)
    assert not ucb1.flagged
    assert cell("10x5", "UCB1", published=6.7, mean=6.0, stderr=0.1, trials=400).flagged
    assert cell("10x5", "RL2", published=6.7, note="not run").z is None


def test_every_flagged_cell_gets_a_footnote_with_no_reason_written_in_the_code():
    below = cell("10x5", "OTS", published=6.7, mean=6.0, stderr=0.1, trials=400)
    above = cell("10x50", "OTS", published=6.7, mean=7.4, stderr=0.1, trials=400)
    near = cell("10x10", "OTS", published=6.7, mean=6.7, stderr=0.1, trials=400)
    rl2 = cell("10x5", "RL2", published=6.7, mean=5.5, stderr=0.1, trials=400)
    refs, texts = compare.footnotes(SPEC, Results([below, above, near, rl2]))
    # A deficit and an excess alike are shown, and nothing unmeasured explains them.
    assert texts == [SPEC.unexplained]
    assert refs == {("10x5", "OTS"): 1, ("10x50", "OTS"): 1, ("10x5", "RL2"): 1}
    assert render.format_cell(SPEC, below, 1).endswith("⚠ [1]")
    assert render.format_cell(SPEC, near, None).endswith("+0.0")


def test_best_of_grid_footnote_gives_figures_measured_by_the_same_command():
    run = start_run(SPEC, "smoke", 100, ["10x5"], seed=0, workers=1)
    cells = classical.run_classical(run)
    published = {c.column: c.mean for c in cells} | {"UCB1": 9.5, "Greedy": 9.5, "RL2": 6.7}
    results = Results(compare.complete_table(run, cells, {"10x5": published}))
    table = results.table
    assert [c.column for c in table if c.flagged] == ["UCB1", "Greedy"]
    measure_best_of_grid(run, results)
    best = results.evidence[BEST_OF_GRID]
    assert set(best) == {("10x5", "UCB1")}  # flagged and tuned; Greedy has no grid
    ucb1 = SPEC.column("UCB1")
    scores = {
        c: classical.run_job(classical.make_job(run, run.settings[0], ucb1, (("c", c),)))
        for c in grid_of("ucb1", SPEC.family).values
    }
    top = max(scores, key=lambda c: scores[c].mean)
    found, cell_ucb1 = best[("10x5", "UCB1")], table[4]
    assert found.tuned == {"c": top} and found.mean == scores[top].mean >= cell_ucb1.mean
    assert found.stderr == scores[top].stderr and found.published == 9.5
    refs, texts = compare.footnotes(SPEC, results)
    assert refs == {("10x5", "UCB1"): 1, ("10x5", "Greedy"): 2}
    assert texts[1] == SPEC.unexplained
    assert f"c = {top}, {found.mean:.2f} ± {found.stderr:.2f}, z = {found.z:+.1f}" in texts[0]
    tuned = f"c = {cell_ucb1.tuned['c']} tuned on the `tune` stream: {cell_ucb1.mean:.2f}"
    assert tuned in texts[0]
    markdown = render.format_markdown(run, results, SMOKE_META)
    assert markdown.count("⚠ [") == 2 and "| 9.5 · " in markdown
    assert f"\n[1] {texts[0]}\n[2] {texts[1]}\n" in markdown
    assert "(100 trials per grid value, OTS 50)" in markdown


SMOKE_META = {
    "command": "metarl-bench reproduce rl2-table1",
    "git_commit": "0" * 40,
    "classical_seconds": 1.0,
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


def test_every_table_spec_matches_its_published_csv_and_budgets():
    from baselines import algorithm_names
    from benchmark.studies.registry import TABLES

    for spec in TABLES.values():
        published = published_table(spec)
        names = {column.name for column in spec.columns}
        assert all(set(row) <= names for row in published.values()), spec.name
        assert all(d.compares in names and d.strategy for d in spec.diagnostics), spec.name
        assert all(c.algorithm in algorithm_names() for c in spec.learned_columns), spec.name
        assert spec.rescale_by is None or spec.column(spec.rescale_by).strategy == "random"
        for budget in ("smoke", "quick", "paper"):
            load_budget(spec, budget)  # strategies and learned settings checked


def test_unknown_table_lists_the_valid_ones(capsys):
    assert main(["reproduce", "rl2-table9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown table 'rl2-table9'; valid tables: rl2-table1")
    assert len(err.splitlines()) == 1


def test_smoke_reproduction_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    uri = fresh_store(tmp_path)
    argv = ["reproduce", "rl2-table1", "--budget", "smoke", "--settings", "10x5"]
    argv += ["--columns", "classical"]  # the learned columns: tests/test_reproduce_learned.py
    code = main([*argv, "--out", "out", "--workers", "1", "--tracking-uri", uri])
    stdout = capsys.readouterr().out
    assert code == 0 and "| 10 | 5 |" in stdout
    with open(tmp_path / "out" / "rl2_table1.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["column"] for row in rows] == COLUMNS
    by_column = {row["column"]: row for row in rows}
    for column in SPEC.columns:
        row = by_column[column.name]
        published = published_table(SPEC)["10x5"].get(column.name)
        assert (float(row["published"]) if row["published"] else None) == published
        if column.strategy is not None:
            assert row["trials"] == "100"
    random = float(by_column["Random"]["mean"]), float(by_column["Random"]["stderr"])
    assert abs(random[0] - 5.0) < 4 * random[1]  # 10 pulls at E[p] = 0.5
    for column in ("Gittins", "TS", "OTS", "UCB1", "eps-Greedy", "Greedy"):
        assert float(by_column[column]["mean"]) > random[0] + 2 * random[1], column
    assert by_column["UCB1"]["tuned"].startswith("c=")
    assert by_column["OTS"]["tuned"].startswith("samples=")
    assert by_column["Gittins"]["tuned"].startswith("discount=")
    assert by_column["RL2"]["note"] == by_column["LSTM-A2C"]["note"] == "not run"
    markdown = (tmp_path / "out" / "rl2_table1.md").read_text()
    assert (
        "--budget smoke --trials 100 --settings 10x5 --seed 0 --workers 1 --columns classical"
        in markdown
    )
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
    experiment = MlflowClient(uri).get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


@pytest.mark.slow
def test_learned_cells_are_the_ledgers_runs_of_the_budget_seeds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = fresh_store(tmp_path)
    run = start_run(SPEC, "smoke", 50, ["10x5", "100x5"], seed=0, workers=1, columns="learned")
    ledger = train_missing(run, tmp_path / "ledger.csv", uri, "reproduce")
    cells = learned_cells(run, ledger)
    # smoke trains the 10-pull settings only, seeds 0 and 1
    assert [(c.setting.name, c.column, c.seeds) for c in cells] == [
        ("10x5", "RL2", (0, 1)), ("10x5", "LSTM-A2C", (0, 1)),
    ]  # fmt: skip
    rl2 = cells[0]
    logged = [MlflowClient(uri).get_run(run_id) for run_id in rl2.run_id.split()]
    assert rl2.trials == 50 and all(r.info.status == "FINISHED" for r in logged)
    means = [r.data.metrics["eval/mean_total_reward"] for r in logged]
    assert rl2.mean == pytest.approx(sum(means) / 2)
    assert rl2.trial_stderr == pytest.approx(sum(r.data.metrics["eval/stderr"] for r in logged) / 2)


@pytest.mark.slow
def test_worker_processes_give_the_same_cells_as_one_process():
    one = classical.run_classical(start_run(SPEC, "smoke", 100, ["10x10"], seed=0, workers=1))
    two = classical.run_classical(start_run(SPEC, "smoke", 100, ["10x10"], seed=0, workers=2))
    assert [(c.column, c.mean, c.tuned) for c in one] == [(c.column, c.mean, c.tuned) for c in two]
