"""``metarl-bench compare`` end to end: a tiny stored ledger of baselines, then only the new
algorithm runs, resumes, and is refused (or marked) when the family's version differs."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from store_support import fresh_store

from benchmark.cli import main
from benchmark.reporting.records import merge_records, read_records
from benchmark.run.restore import commit_notes
from benchmark.run.tracking import current_version, git_tags
from benchmark.sweeps.compare import budget_notes, setting_protocols
from tasks import TASKS

SETTING = "bernoulli-bandit arms=5 pulls=10"


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    """A ledger of a2c, random and ucb1 on 5 arms x 10 pulls (2 seeds, 2000 env steps, 20 trials)
    and an empty store for the compared algorithm's runs."""
    folder = tmp_path_factory.mktemp("compare")
    base = fresh_store(folder)
    (folder / "mine").mkdir()
    mine = fresh_store(folder / "mine")
    sweep = {
        "name": "base",
        "seeds": 2,
        "overrides": {"trainer.env_steps": 2000, "eval.trials": 20, "algo.batch_size": 64},
        "algorithms": ["a2c"],
        "strategies": ["random", "ucb1"],
        "tasks": [{"name": "bernoulli-bandit", "variants": [{"arms": 5, "pulls": 10}]}],
    }
    (folder / "base.yaml").write_text(yaml.safe_dump(sweep))
    path = folder / "ledger.csv"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        assert main(["--tracking-uri", base, "sweep", "base.yaml", "--workers", "1"]) == 0
        args = ["--tracking-uri", base, "table", "--experiment", "base", "--export-runs"]
        assert main([*args, str(path), "--format", "csv"]) == 0
    return folder, path, mine


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Each test works in its own folder: compare writes ``results/compare-<algo>.*`` there."""
    monkeypatch.chdir(tmp_path)


def compare(mine: str, *args: str) -> list[str]:
    return ["--tracking-uri", mine, "compare", "lstm-a2c", "--workers", "1", *args]


def test_compare_runs_only_the_algorithm_and_gives_a_verdict_per_baseline(ledger, capfd, tmp_path):
    folder, path, mine = ledger
    out = folder / "compare.json"
    assert main(compare(mine, "--against", str(path), "--format", "json", "--out", str(out))) == 0
    err = capfd.readouterr().err
    assert "2 runs in experiment 'compare-lstm-a2c'" in err and "2 to run" in err
    # The table is also written to results/ as table writes its own: markdown naming the
    # command, and the long summary as CSV.
    assert "wrote results/compare-lstm-a2c.md and results/compare-lstm-a2c.csv" in err
    markdown = (tmp_path / "results" / "compare-lstm-a2c.md").read_text()
    assert f"Regenerate with `metarl-bench compare lstm-a2c --against {path}`" in markdown
    assert "## lstm-a2c against each baseline" in markdown
    written = pd.read_csv(tmp_path / "results" / "compare-lstm-a2c.csv")
    payload = json.loads(out.read_text())
    verdicts = {
        row["baseline"]: row for row in payload["sections"]["lstm-a2c against each baseline"]
    }
    assert set(verdicts) == {"a2c", "random", "ucb1"}
    for row in verdicts.values():
        assert row["settings"] == 1 and row["MDD"] != "—"
        assert row["verdict"] in ("better", "worse", "no evidence at n=2/2")
    summary = pd.DataFrame(payload["summary"])
    mine_rows = summary[(summary["algorithm"] == "lstm-a2c") & (summary["scope"] == "setting")]
    assert set(mine_rows["n"]) == {2} and set(mine_rows["setting"]) == {SETTING}
    assert "difference_over_a2c" in set(summary["statistic"])
    assert set(written["statistic"]) == set(summary["statistic"]) and len(written) == len(summary)
    assert any("MDD = (t_(1-α/2,df) + t_(power,df))" in line for line in payload["methods"])

    # A rerun resumes: nothing is trained again, and the table is the same.
    again = folder / "again.json"
    assert main(compare(mine, "--against", str(path), "--format", "json", "--out", str(again))) == 0
    assert "2 already finished, 0 to run" in capfd.readouterr().err
    assert json.loads(again.read_text())["summary"] == payload["summary"]


def test_a_family_version_bump_is_refused_and_reruns_the_algorithm(ledger, capfd, monkeypatch):
    folder, path, mine = ledger
    monkeypatch.setattr(TASKS["bernoulli-bandit"], "version", 2)
    assert main(compare(mine, "--against", str(path))) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "protocol mismatch: 6 stored rows differ" in err[0]
    assert "task_version 1 vs 2" in err[0] and "--allow-mismatch" in err[0]
    # The algorithm's runs made at version 1 no longer count as finished for a sweep.
    tags = {"task": "bernoulli-bandit", "task_version": "1"}
    assert not current_version(tags) and current_version(tags | {"task_version": "2"})
    # run --from says so when it reruns such a run.
    notes = commit_notes(tags | git_tags())
    version = "bernoulli-bandit version 1, this checkout's bernoulli-bandit is version 2"
    assert f"note: the run was made at {version}" in notes


def test_stored_rows_of_another_protocol_are_refused_or_marked(ledger, tmp_path, capfd):
    folder, path, mine = ledger
    rows = read_records([path])
    rows.loc[rows["algorithm"] == "ucb1", "task_version"] = 0
    edited = tmp_path / "edited.csv"
    merge_records(edited, rows)
    assert main(compare(mine, "--against", str(edited))) == 2
    err = capfd.readouterr().err
    assert "protocol mismatch: 2 stored rows differ" in err and "stored ucb1" in err

    out = tmp_path / "marked.md"
    args = ["--against", str(edited), "--allow-mismatch", "--out", str(out)]
    assert main(compare(mine, *args)) == 0
    assert "2 already finished, 0 to run" in capfd.readouterr().err
    text = out.read_text()
    assert "| ucb1 (protocol differs) | classical |" in text and "| a2c | learned |" in text
    assert "ran under another protocol: bernoulli-bandit arms=5 pulls=10: stored ucb1" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--families", "maze"], "no stored rows of family 'maze'; stored families: bernoulli"),
        (["--settings", "arms=7"], "no stored setting matches 'arms=7'; stored settings: bern"),
        (["--seeds", "1"], "--seeds must be >= 2"),
        (["--format", "html"], "unknown format 'html'"),
    ],
)
def test_bad_compare_input_is_one_line_exit_2(ledger, capfd, args, message):
    _, path, mine = ledger
    assert main(compare(mine, "--against", str(path), *args)) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_the_protocol_comes_from_the_stored_learned_rows_and_budget_is_noted(ledger):
    _, path, _ = ledger
    stored = read_records([path])
    (plan,) = setting_protocols(stored, None, None)
    assert plan["setting"] == SETTING and plan["task_params"] == {"arms": 5, "pulls": 10}
    assert (plan["trials"], plan["seeds"], plan["budget"]) == (20, [0, 1], 2000)
    assert budget_notes("x", [plan], stored) == []
    (longer,) = setting_protocols(stored, 2, 5000)
    assert longer["budget"] == 5000 and longer["stored_budget"] == 2000
    (note,) = budget_notes("x", [longer], stored)
    assert "x trained for 5,000 env steps (--budget), the stored learned baselines for 2,000" in (
        note
    )
