"""``metarl-bench table`` on a real MLflow sqlite store holding hand-made runs with known scores."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from store_support import fresh_store

from benchmark.cli import main

# Normalised scores per (algorithm, arms) over seeds 0 and 1: the hand-computed case of
# tests/test_stats.py. P(a > b) = (0.5 + 0.75) / 2 = 0.625; IQM(a) = mean(2, 5) = 3.5.
# Every run of c beats every run of b: P(c > b) = 1 in every resample, a zero-width interval.
SCORES = {
    ("a", 2): [1.0, 2.0],
    ("a", 3): [5.0, 5.0],
    ("b", 2): [0.0, 3.0],
    ("b", 3): [5.0, 4.0],
    ("c", 2): [10.0, 11.0],
    ("c", 3): [10.0, 12.0],
}


def _log_run(client, experiment_id, algorithm, arms, seed, score, kind="learned"):
    tags = {"algorithm": algorithm, "task": "bernoulli-bandit", "kind": kind}
    run_id = client.create_run(experiment_id, tags=tags).info.run_id
    params = {"seed": seed, "task.arms": arms, "task.pulls": 4, "eval.trials": 10}
    metrics = {"eval/normalized_score": score, "eval/mean_total_reward": 10 * score}
    metrics["eval/regret"] = 1 - score
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
        params=[Param(k, str(v)) for k, v in params.items()],
    )
    client.log_dict(run_id, {"per_episode_returns": [score] * 4}, "evaluation.json")
    client.set_terminated(run_id, "FINISHED")
    return run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("store")
    uri = fresh_store(folder)
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("synthetic", (folder / "artifacts").as_uri())
    client.create_experiment("other", (folder / "artifacts2").as_uri())
    # A stale run of (a, arms=2, seed 0) that a later run of the same cell replaces.
    _log_run(client, experiment_id, "a", 2, 0, -100.0)
    for (algorithm, arms), scores in SCORES.items():
        for seed, score in enumerate(scores):
            _log_run(client, experiment_id, algorithm, arms, seed, score)
    for arms in (2, 3):
        for seed in (0, 1):
            _log_run(client, experiment_id, "oracle", arms, seed, 1.0, kind="classical")
    return uri


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_table_statistics_match_the_hand_computed_case(store, tmp_path, capsys):
    out = tmp_path / "table.csv"
    args = ["--tracking-uri", store, "table", "--experiment", "synthetic", "--baseline", "b"]
    assert main([*args, "--format", "csv", "--out", str(out)]) == 0
    summary = pd.read_csv(out)
    overall = summary[summary["scope"] == "all settings"].set_index(["algorithm", "statistic"])
    assert overall.loc[("a", "iqm_normalized_score"), "estimate"] == pytest.approx(3.5)
    assert overall.loc[("a", "iqm_normalized_score"), "n"] == 4
    assert overall.loc[("a", "p_improvement_over_b"), "estimate"] == pytest.approx(0.625)
    assert ("b", "p_improvement_over_b") not in overall.index
    cell = summary[
        (summary["setting"] == "bernoulli-bandit arms=2 pulls=4")
        & (summary["algorithm"] == "a")
        & (summary["statistic"] == "normalized_score")
    ].iloc[0]
    # mean 1.5; half-width t(0.975, 1) * sd / sqrt(2) = 12.7062 * 0.70711 / 1.41421 = 6.3531
    assert cell["n"] == 2 and cell["estimate"] == pytest.approx(1.5)
    assert cell["ci_high"] - cell["estimate"] == pytest.approx(6.3531, rel=1e-4)
    assert "stratified bootstrap" in overall.loc[("a", "iqm_normalized_score"), "ci_method"]

    small = "n too small: 2 seeds in a setting, 3 distinct resamples"
    assert overall.loc[("a", "p_improvement_over_b"), "ci_note"] == small
    assert overall.loc[("a", "iqm_normalized_score"), "ci_note"] == small
    separated = overall.loc[("c", "p_improvement_over_b")]
    assert separated["estimate"] == separated["ci_low"] == separated["ci_high"] == 1.0
    zero = "zero width: every resample gave the same value"
    assert separated["ci_note"] == f"{small}; {zero}"

    markdown = (tmp_path / "results" / "synthetic.md").read_text()
    assert f"| 1.000 [1.000, 1.000] ({small}; {zero}) |" in markdown
    assert "A CI marked 'n too small' resamples fewer than 5 seeds" in markdown
    assert "n = number of seeds" in markdown and "stratified bootstrap" in markdown
    assert "| a | learned | 2 | 15.00 ± 63.53 | 1.500 ± 6.353 |" in markdown
    assert "P(X > b) [95% CI]" in markdown
    assert (tmp_path / "results" / "synthetic.csv").is_file()
    plots = sorted(p.name for p in (tmp_path / "results" / "synthetic").glob("*.png"))
    assert plots == [
        "adaptation_bernoulli-bandit_arms-2_pulls-4.png",
        "adaptation_bernoulli-bandit_arms-3_pulls-4.png",
    ]


def test_table_formats(store, capsys):
    base = ["--tracking-uri", store, "table", "--experiment", "synthetic", "--baseline", "b"]
    assert main([*base, "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["baseline"] == "b" and payload["summary"]
    assert main([*base, "--format", "latex"]) == 0
    assert "\\begin{tabular}" in capsys.readouterr().out


def test_default_baseline_missing_is_stated(store, capsys):
    assert main(["--tracking-uri", store, "table", "--experiment", "synthetic"]) == 0
    assert "default baseline 'a2c' has no runs" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--experiment", "nope"],
            "unknown experiment 'nope'; experiments: Default, other, synthetic",
        ),
        (["--experiment", "synthetic", "--baseline", "zzz"], "baseline 'zzz' has no runs"),
        (["--experiment", "synthetic", "--format", "xml"], "unknown format 'xml'"),
    ],
)
def test_table_bad_input_is_one_line_exit_2(store, tmp_path, capsys, args, message):
    assert main(["--tracking-uri", store, "table", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


def test_plot_file_names_of_long_settings_are_bounded_and_distinct(tmp_path):
    """A setting label of many task parameters (cartpole's ranges) still gives a file name that
    can be written; two labels that differ only past the cut get different names."""
    from benchmark.reporting.plots import slug

    assert slug("bernoulli-bandit arms=5 pulls=10") == "bernoulli-bandit_arms-5_pulls-10"
    ranges = " ".join(f"r{i}_range=[0.{i}, 1.{i}]" for i in range(30))
    first, second = (
        slug(f"cartpole-params {ranges} ranges=packer"),
        slug(f"cartpole-params {ranges} ranges=suite"),
    )
    assert len(first) == len(second) == 120 and first != second
    (tmp_path / f"adaptation_{first}.png").write_bytes(b"")  # OSError if the name were too long
