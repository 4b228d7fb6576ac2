"""Run records: a real sweep's runs exported to a CSV ledger, read back, merged, and tabled."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import yaml
from store_support import fresh_store

from benchmark.cli import main
from benchmark.reporting.records import (
    COLUMNS,
    RUN_KEY,
    merge_records,
    read_records,
    records_from_store,
)
from tasks import ConfigError


@pytest.fixture(scope="module")
def sweep_store(tmp_path_factory):
    """A tiny real sweep (lstm-a2c and random on 5 arms x 10 pulls, 2 seeds) in a fresh store."""
    folder = tmp_path_factory.mktemp("records")
    uri = fresh_store(folder)
    sweep = {
        "name": "tiny-records",
        "seeds": 2,
        "overrides": {"trainer.env_steps": 2000, "eval.trials": 20, "algo.batch_size": 64},
        "algorithms": ["lstm-a2c"],
        "strategies": ["random"],
        "tasks": [{"name": "bernoulli-bandit", "variants": [{"arms": 5, "pulls": 10}]}],
    }
    path = folder / "tiny-records.yaml"
    path.write_text(yaml.safe_dump(sweep))
    args = ["--tracking-uri", uri, "sweep", str(path), "--workers", "2"]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        assert main(args) == 0
    return folder, uri


def test_store_to_ledger_to_table_gives_the_same_summary(sweep_store, tmp_path, monkeypatch):
    folder, uri = sweep_store
    monkeypatch.chdir(tmp_path)
    ledger, direct, again = tmp_path / "ledger.csv", tmp_path / "direct.csv", tmp_path / "from.csv"
    args = ["--tracking-uri", uri, "table", "--experiment", "tiny-records", "--format", "csv"]
    assert main([*args, "--out", str(direct), "--export-runs", str(ledger)]) == 0
    records = read_records([ledger])
    assert len(records) == 4 and list(records.columns[: len(COLUMNS)]) == list(COLUMNS)
    learned = records[records["kind"] == "learned"]
    assert set(records["task_version"]) == {1} and set(records["trials"]) == {20}
    assert (learned["env_steps"] >= 2000).all() and (learned["cpu_seconds"] > 0).all()
    assert (learned["wall_seconds"] > 0).all() and (learned["commit"].str.len() == 40).all()
    for row in records.to_dict("records"):
        assert len(json.loads(row["per_episode_returns"])) == 10
        assert json.loads(row["task_params"]) == {"arms": 5, "pulls": 10}
        protocol = json.loads(row["protocol"])
        assert protocol["eval_trials"] == 20 and protocol["episodes_per_trial"] == 10
        assert protocol["env_steps_budget"] == (2000 if row["kind"] == "learned" else 0)

    # No MLflow store is needed: the tracking URI names a file that does not exist.
    missing = f"sqlite:///{tmp_path / 'absent.db'}"
    table = ["--tracking-uri", missing, "table", "--from", str(ledger), "--format", "csv"]
    assert main([*table, "--out", str(again)]) == 0
    assert not (tmp_path / "absent.db").exists()
    pd.testing.assert_frame_equal(pd.read_csv(direct), pd.read_csv(again))
    assert main([*table[:-2], "--format", "markdown"]) == 0  # renders from records too


def test_merge_replaces_rows_of_the_same_run_key_and_keeps_the_others(sweep_store, tmp_path):
    _, uri = sweep_store
    records = records_from_store(uri, "tiny-records")
    ledger = tmp_path / "ledger.csv"
    merge_records(ledger, records.iloc[:3])
    first = ledger.read_bytes()
    changed = records.iloc[[0, 3]].copy()
    changed["total_reward"] = [-1.0, -2.0]
    merged = merge_records(ledger, changed)
    assert len(merged) == 4 and not merged.duplicated(list(RUN_KEY)).any()
    stored = read_records([ledger]).set_index("run_id")
    assert stored.loc[records["run_id"].iloc[0], "total_reward"] == -1.0
    assert stored.loc[records["run_id"].iloc[3], "total_reward"] == -2.0
    assert stored.loc[records["run_id"].iloc[1], "total_reward"] == records["total_reward"].iloc[1]
    # The same rows in another order write the same bytes (sorted, stable).
    other = tmp_path / "other.csv"
    merge_records(other, records.iloc[:3].iloc[::-1])
    assert other.read_bytes() == first
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert ledger.stat().st_mode & 0o777 == 0o666 & ~umask  # a plain file, readable by the group


def test_read_records_expands_globs_and_names_a_bad_file(sweep_store, tmp_path, capsys):
    _, uri = sweep_store
    records = records_from_store(uri, "tiny-records")
    merge_records(tmp_path / "a.csv", records.iloc[:2])
    merge_records(tmp_path / "b.csv", records.iloc[2:])
    assert len(read_records([str(tmp_path / "*.csv")])) == 4
    bad = tmp_path / "bad.csv"
    bad.write_text("algorithm,seed\nx,0\n")
    with pytest.raises(ConfigError, match=r"bad\.csv lack the columns: kind, task"):
        read_records([bad])
    assert main(["table", "--from", str(tmp_path / "none-*.csv")]) == 2
    assert "no run records match" in capsys.readouterr().err
    assert main(["table", "--from", str(bad), "--experiment", "x"]) == 2
    assert "--experiment needs a store" in capsys.readouterr().err


def test_where_selects_the_runs_of_the_table_and_of_the_export(sweep_store, tmp_path, capsys):
    _, uri = sweep_store
    ledger, selected = tmp_path / "ledger.csv", tmp_path / "selected.csv"
    merge_records(ledger, records_from_store(uri, "tiny-records"))
    table = ["table", "--from", str(ledger), "--format", "csv", "--where"]
    assert main([*table, "algorithm=lstm-a2c", "seed=1", "--export-runs", str(selected)]) == 0
    picked = read_records([selected])
    assert list(picked["algorithm"]) == ["lstm-a2c"] and list(picked["seed"]) == [1]
    assert main([*table, "pulls=10", "seed=0,1", "--out", str(tmp_path / "t.csv")]) == 0
    summary = pd.read_csv(tmp_path / "t.csv")
    assert set(summary["algorithm"]) == {"lstm-a2c", "random"}
    assert main([*table, "pulls=100"]) == 2  # a task parameter that no run has: no runs left
    assert (
        main(
            [
                "--tracking-uri",
                uri,
                "table",
                "--experiment",
                "tiny-records",
                "--where",
                "kind=classical",
                "--export-runs",
                str(tmp_path / "c.csv"),
            ]
        )
        == 0
    )
    assert set(read_records([tmp_path / "c.csv"])["algorithm"]) == {"random"}
    markdown = capsys.readouterr().out  # names the experiment and the selection that made it
    assert "MLflow experiment `tiny-records`" in markdown
    assert "metarl-bench table --experiment tiny-records --where kind=classical" in markdown
    assert main([*table, "colour=red"]) == 2
    assert "unknown --where key 'colour'" in capsys.readouterr().err
    assert main([*table, "seed"]) == 2


def test_a_ledger_label_is_recomputed_from_its_task_params_so_old_and_new_rows_merge(
    sweep_store, tmp_path
):
    _, uri = sweep_store
    row = records_from_store(uri, "tiny-records").iloc[:1].copy()
    params = {"episodes": 2, "m_range": [0.5, 1.5], "l_range": [0.6, 1.4], "ranges": "packer"}
    stale = "pendulum-params episodes=2 m_range=[0.5, 1.5] l_range=[0.6, 1.4] ranges=packer"
    label = "pendulum-params episodes=2 ranges=packer"
    row["task"], row["task_params"], row["setting"] = "pendulum-params", json.dumps(params), stale
    ledger = tmp_path / "ledger.csv"
    pd.DataFrame(row).to_csv(ledger, index=False)  # written as an older version labelled it
    assert read_records([ledger])["setting"].tolist() == [label]
    fresh = row.copy()
    fresh["setting"], fresh["total_reward"] = label, -7.0
    merged = merge_records(ledger, fresh)
    assert len(merged) == 1 and merged["total_reward"].tolist() == [-7.0]


def test_two_configs_of_one_run_are_refused_not_averaged_as_two_seeds(
    sweep_store, tmp_path, capsys
):
    _, uri = sweep_store
    records = records_from_store(uri, "tiny-records")
    older = records[records["algorithm"] == "lstm-a2c"].iloc[:1]
    older = older.assign(config_hash=["0123456789abcdef"], run_id=["older-run"])
    ledger = tmp_path / "ledger.csv"
    merge_records(ledger, pd.concat([records, older]))
    assert main(["table", "--from", str(ledger)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "hold 2 runs of lstm-a2c on bernoulli-bandit" in err
    assert "0123456789abcdef" in err and "--where config_hash=" in err
    kept = records[records["algorithm"] == "lstm-a2c"]["config_hash"].iloc[0]
    assert main(["table", "--from", str(ledger), "--where", f"config_hash={kept}"]) == 0
