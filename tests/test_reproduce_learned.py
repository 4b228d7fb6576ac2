"""``reproduce``'s learned columns: cells over seeds, the selection rule, the ledger and resume,
``--columns``, Table 2's rescaling and OPSRL ordering, and the maze table (Table 3)."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from scipy import stats
from store_support import fresh_store

from benchmark.cli import main
from benchmark.studies import compare, rl2_table2, rl2_table3
from benchmark.studies.cells import Cell, Results
from benchmark.studies.inputs import parse_settings, published_table
from benchmark.studies.learned import reference_means, seed_cell
from benchmark.studies.rl2_table1 import SPEC as TABLE1


def record(seed: int, total: float, train: float | str, stderr: float = 0.2, **extra) -> dict:
    """A ledger row of one learned run (the fields a learned cell reads)."""
    return {
        "run_id": f"run{seed}", "seed": seed, "trials": 100, "total_reward": total,
        "stderr": stderr, "train_return": train, "wall_seconds": 10.0 + seed,
        "cpu_seconds": 8.0, "env_steps": 3200, "commit": "abcdef1234567", **extra,
    }  # fmt: skip


def test_a_learned_cell_is_the_mean_over_seeds_and_the_best_training_return_seed():
    setting = parse_settings(TABLE1, ["10x5"])[0]
    runs = [record(0, 6.0, 4.1), record(1, 5.0, 4.9, stderr=0.3), record(2, 7.0, 4.5)]
    cell = seed_cell(TABLE1, setting, TABLE1.column("RL2"), runs)
    assert cell.seeds == (0, 1, 2) and cell.mean == pytest.approx(6.0)
    assert cell.stderr == pytest.approx(1.0 / math.sqrt(3))  # SD over seeds is 1
    assert cell.ci95 == pytest.approx(stats.t.ppf(0.975, 2) / math.sqrt(3))
    # The selection rule reads training returns only: seed 1, the worst held-out score.
    assert (cell.selected_seed, cell.selected_mean, cell.selected_stderr) == (1, 5.0, 0.3)
    assert cell.trial_stderr == pytest.approx((0.2 + 0.3 + 0.2) / 3)
    assert (cell.seconds, cell.cpu_seconds, cell.env_steps) == (33.0, 24.0, 3200)
    assert cell.commit == "abcdef1234" and cell.run_id == "run0 run1 run2"
    tie = seed_cell(
        TABLE1, setting, TABLE1.column("RL2"), [record(3, 6.0, 4.0), record(2, 5.0, 4.0)]
    )
    assert tie.selected_seed == 2  # the lowest seed on a tie
    unlogged = seed_cell(TABLE1, setting, TABLE1.column("RL2"), [record(0, 6.0, "")])
    assert unlogged.selected_seed is None and unlogged.stderr == 0.2 and unlogged.ci95 is None


def test_a_learned_cell_compares_its_seed_mean_and_its_selected_seed():
    setting = parse_settings(TABLE1, ["10x5"])[0]
    runs = [record(0, 6.5, 1.0), record(1, 6.7, 2.0), record(2, 6.6, 0.0)]
    cell = seed_cell(TABLE1, setting, TABLE1.column("RL2"), runs)
    [cell] = compare.compare_row(TABLE1, [cell], {}, published_table(TABLE1)["10x5"])
    published_sd = math.hypot(0.2 * math.sqrt(100 / 1000), TABLE1.rounding_sd)
    assert cell.z == pytest.approx((6.6 - 6.7) / math.hypot(0.1 / math.sqrt(3), published_sd))
    assert cell.selected_z == pytest.approx((6.7 - 6.7) / math.hypot(0.2, published_sd))


def test_table2_learned_cells_are_normalised_and_rescaled_by_the_random_factor():
    setting = parse_settings(rl2_table2.SPEC, ["10"])[0]
    oracle, random = reference_means("tabular-mdp", setting.params, 100, 0)
    assert 0 < random < oracle
    cell = seed_cell(
        rl2_table2.SPEC, setting, rl2_table2.SPEC.column("RL2"), [record(0, 0.8 * oracle, 1.0)]
    )
    assert cell.mean == pytest.approx(0.8) and cell.stderr == pytest.approx(0.2 / oracle)
    published = published_table(rl2_table2.SPEC)["10"]
    [cell] = compare.compare_row(rl2_table2.SPEC, [cell], {}, published)
    # The Random-column factor: our random / oracle over the published Random (0.482).
    factor = (random / oracle) / published["Random"]
    assert cell.rescaled == pytest.approx(cell.mean / factor)
    # No Random cell measured here: the rescaled SE is ours alone, scaled the same way.
    assert cell.rescaled_se == pytest.approx(0.2 / random * published["Random"])


def ordering_results(rl2: dict[str, float], opsrl: dict[str, float], ci: float = 0.01):
    """Table 2 cells of RL² (3 seeds, CI ``ci``) and OPSRL (SE 0.002) per setting."""
    cells = []
    for name in rl2:
        setting = parse_settings(rl2_table2.SPEC, [name])[0]
        cells.append(
            Cell(setting, "RL2", "rl2", mean=rl2[name], stderr=ci / 4, ci95=ci, seeds=(0, 1, 2))
        )
        cells.append(Cell(setting, "OPSRL", "opsrl", mean=opsrl[name], stderr=0.002, trials=1000))
    return Results(cells)


def test_the_opsrl_ordering_check_on_constructed_numbers():
    opsrl = {"10": 0.70, "25": 0.82, "50": 0.90, "75": 0.93, "100": 0.95}
    same = {"10": 0.75, "25": 0.86, "50": 0.905, "75": 0.90, "100": 0.92}
    rows = rl2_table2.ordering(ordering_results(same, opsrl))
    assert [row["ours"] for row in rows] == ["ahead", "ahead", "level", "behind", "behind"]
    assert all(row["reproduced"] for row in rows)
    assert rows[2]["half_width"] == pytest.approx(math.hypot(0.01, rl2_table2.Z_95 * 0.002))
    flipped = dict(same, **{"10": 0.60, "100": 0.96})
    results = ordering_results(flipped, opsrl)
    assert [row["reproduced"] for row in rl2_table2.ordering(results)] == [
        False, True, True, True, False,
    ]  # fmt: skip
    section = "\n".join(rl2_table2.ordering_section(None, results))
    assert "| 10 | ahead | -0.100 ± 0.011 (n=3) | behind | no |" in section
    assert "reproduced at 3 of 5 settings" in section
    # A wide interval covering zero is "level", whatever the sign of the difference.
    assert rl2_table2.relation(0.02, 0.03) == "level" and rl2_table2.relation(0.04, 0.03) == "ahead"


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """Exit status and stdout of ``metarl-bench argv``."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = int(exit_.code)
    return code, capsys.readouterr().out


def table_rows(path, setting: str = "setting") -> dict[tuple[str, str], dict]:
    """A report CSV's rows by (setting, column); ``setting`` names the CSV's setting column."""
    with open(path) as handle:
        return {(row[setting], row["column"]): row for row in csv.DictReader(handle)}


def test_learned_runs_resume_from_the_ledger_and_columns_add_cells(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    uri = fresh_store(tmp_path)
    base = ["reproduce", "rl2-table1", "--budget", "smoke", "--trials", "30", "--out", "out"]
    base += ["--workers", "1", "--tracking-uri", uri]
    code, out = run_cli([*base, "--settings", "10x5", "--columns", "learned"], capsys)
    assert code == 0 and "Learned runs: 4 trained by this invocation" in out
    first = table_rows(tmp_path / "out" / "rl2_table1.csv")
    ledger = tmp_path / "out" / "ledgers" / "rl2_table1.csv"
    with open(ledger) as handle:
        runs = list(csv.DictReader(handle))
    assert sorted((r["algorithm"], r["seed"]) for r in runs) == [
        ("lstm-a2c", "0"), ("lstm-a2c", "1"), ("rl2", "0"), ("rl2", "1"),
    ]  # fmt: skip
    rl2 = first[("10x5", "RL2")]
    means = [float(r["total_reward"]) for r in runs if r["algorithm"] == "rl2"]
    assert float(rl2["mean"]) == pytest.approx(np.mean(means)) and rl2["seeds"] == "0 1"
    assert int(rl2["env_steps"]) == 3200 and float(rl2["cpu_seconds"]) > 0
    assert first[("10x5", "Random")]["mean"] == ""  # classical columns not computed
    experiment = MlflowClient(uri).get_experiment_by_name("reproduce").experiment_id
    trained = len(MlflowClient(uri).search_runs([experiment], "tags.algorithm = 'rl2'"))
    # Again: nothing new is trained and the learned cells are the same.
    code, out = run_cli([*base, "--settings", "10x5", "--columns", "learned"], capsys)
    assert code == 0 and "Learned runs: 0 trained by this invocation" in out
    assert "the ledger `ledgers/rl2_table1.csv` of the output folder holds 4 run(s)" in out
    assert "those not trained by this invocation were trained by an earlier one" in out
    assert len(MlflowClient(uri).search_runs([experiment], "tags.algorithm = 'rl2'")) == trained
    second = table_rows(tmp_path / "out" / "rl2_table1.csv")
    for column in ("RL2", "LSTM-A2C"):
        assert second[("10x5", column)] == first[("10x5", column)]
    # The classical columns of another setting are added; the learned cells stay.
    code, out = run_cli([*base, "--settings", "10x10", "--columns", "classical"], capsys)
    third = table_rows(tmp_path / "out" / "rl2_table1.csv")
    assert code == 0 and {s for s, _ in third} == {"10x5", "10x10"}
    assert third[("10x5", "RL2")]["mean"] == first[("10x5", "RL2")]["mean"]
    assert third[("10x10", "RL2")]["note"] == "not run" and third[("10x10", "UCB1")]["mean"]
    assert len(MlflowClient(uri).search_runs([experiment], "tags.algorithm = 'rl2'")) == trained
    # A learned-only invocation over that report credits its classical cells and their tuning to
    # it, not to its own budget.
    code, out = run_cli([*base, "--settings", "10x5", "--columns", "learned"], capsys)
    markdown = (tmp_path / "out" / "rl2_table1.md").read_text()
    intro = markdown.split("\n## ")[0]
    assert code == 0 and "trials per grid value" not in intro
    assert "the classical cells and their tuning are those of the earlier report" in intro
    assert "earlier report `rl2_table1.csv` in the output folder" in markdown
    made_by = "classical cells made by `metarl-bench reproduce rl2-table1 --budget smoke"
    assert (
        f"{made_by} --trials 30 --settings 10x10 --seed 0 --workers 1 --columns classical`"
        in markdown
    )
    # Carried forward by the next learned-only invocation, not replaced by its own command.
    code, out = run_cli([*base, "--settings", "10x5", "--columns", "learned"], capsys)
    again = (tmp_path / "out" / "rl2_table1.md").read_text()
    assert code == 0 and f"{made_by} --trials 30 --settings 10x10" in again


def test_bad_columns_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["reproduce", "rl2-table1", "--columns", "rl2", "--out", "out"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "error: unknown --columns 'rl2'; valid: all, learned, classical"
    assert list(tmp_path.iterdir()) == []


def test_episode_statistics_of_constructed_lengths():
    steps = torch.tensor([[10.0, 6, 6, 6, 6], [8, 8, 5, 5, 5], [4, 9, 4, 4, 4], [20, 10, 9, 9, 9]])
    got = rl2_table3.episode_statistics(steps)
    assert got["episode_1"][0] == pytest.approx(10.5) and got["episode_2"][0] == pytest.approx(8.25)
    assert got["improved_pct"][0] == pytest.approx(75.0)  # the tie (8, 8) counts as improved
    differences = torch.tensor([-4.0, 0, 5, -10])
    assert got["episode_2_minus_1"] == pytest.approx([-2.25, differences.std().item() / 2])


def test_maze_table_smoke(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    uri = fresh_store(tmp_path)
    argv = ["reproduce", "rl2-table3", "--budget", "smoke", "--out", "out", "--tracking-uri", uri]
    code, out = run_cli(argv, capsys)
    assert code == 0 and "first-person 3-D" in out and "## The shape" in out
    with open(tmp_path / "out" / "ledgers" / "rl2_table3.csv") as handle:
        [run] = list(csv.DictReader(handle))  # one run (seed 0) serves both rows
    measured = json.loads(run["measurements"])
    trained = json.loads(run["task_params"])
    assert (trained["size"], trained["episodes"]) == (5, 2)
    small, large = measured["5x5"]["task"], measured["9x9"]["task"]
    assert (small["size"], small["episodes"], small["max_steps"]) == (5, 5, None)
    assert (large["size"], large["episodes"], large["max_steps"]) == (9, 5, 400)
    rows = table_rows(tmp_path / "out" / "rl2_table3.csv", "size")
    for size, horizon in (("5", 100), ("9", 400)):
        lengths = [float(rows[(size, f"ep {k}")]["mean"]) for k in range(1, 6)]
        assert all(1 <= length <= horizon for length in lengths)
        assert 0 <= float(rows[(size, "%Improved")]["mean"]) <= 100
        assert rows[(size, "ep 1")]["z"] == ""  # another task: no z
    assert float(rows[("5", "ep 1")]["published"]) == 52.4
