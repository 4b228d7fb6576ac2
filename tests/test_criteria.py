"""The reference criteria (``metarl-bench table --criteria``): hand-built runs whose verdicts are
known, checked against independent scipy computations, and the flag end to end on a ledger."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmark.cli import main
from benchmark.reporting.criteria import SCOPE, check, criteria_table, summary_rows
from benchmark.reporting.records import typed, write_records

BANDIT = "bernoulli-bandit arms=5 pulls=10"
MAZE = "maze size=5 episodes=3"


def runs_of(setting: str, algorithm: str, scores, totals=None, curves=None, kind="learned"):
    """One row per seed of ``algorithm`` on ``setting`` (the run-records columns the criteria
    read); ``totals`` default to the scores and ``curves`` to none."""
    totals = scores if totals is None else totals
    curves = curves or [None] * len(scores)
    return [
        {
            "algorithm": algorithm,
            "kind": kind,
            "task": setting.split()[0],
            "setting": setting,
            "seed": seed,
            "normalized_score": score,
            "total_reward": total,
            "per_episode_returns": json.dumps(curve) if curve is not None else "",
        }
        for seed, (score, total, curve) in enumerate(zip(scores, totals, curves, strict=True))
    ]


def frame(*groups) -> pd.DataFrame:
    return pd.DataFrame([row for group in groups for row in group])


def only(results, setting):
    [result] = [r for r in results if r.setting == setting]
    return result


def test_a_clearly_better_plugin_meta_learner_passes_criterion_1_with_welch_ci():
    mine, theirs = [0.60, 0.63, 0.61], [0.01, -0.02, 0.00]
    runs = frame(
        runs_of(BANDIT, "gru-a2c", mine),  # a plug-in counts as a meta-learner
        runs_of(BANDIT, "rl2", [0.40, 0.42, 0.41]),
        runs_of(BANDIT, "a2c", theirs),
        runs_of(BANDIT, "ucb1", [0.9, 0.9, 0.9], kind="classical"),  # never the best: classical
    )
    result = only(check(runs), BANDIT)
    assert result.best == "gru-a2c" and result.measure == "normalized_score" and result.n == 3
    welch = stats.ttest_ind(mine, theirs, equal_var=False).confidence_interval(0.95)
    assert result.versus.label == "better"
    assert result.versus.difference == pytest.approx(np.mean(mine) - np.mean(theirs))
    assert (result.versus.ci_low, result.versus.ci_high) == pytest.approx(welch)
    assert result.passed() == {1: True, 2: False}  # 0.61 < 0.8; no episodes: no criterion 3
    row = criteria_table([result]).iloc[0]
    assert row["best meta-learner"] == "gru-a2c" and row["vs a2c: difference [95% CI]"].endswith(
        "better: pass"
    )
    assert row["normalised [95% CI]"].endswith("< 0.8: fail")
    assert row["criteria"] == "1 ✓ 2 ✗"


def test_overlapping_cis_are_not_better_and_a_high_normalised_score_passes_criterion_2():
    runs = frame(
        runs_of(BANDIT, "rl2", [0.95, 0.70, 0.85]),
        runs_of(BANDIT, "a2c", [0.80, 0.65, 0.90]),
    )
    result = only(check(runs), BANDIT)
    assert result.versus.label == "no evidence at n=3/3"
    assert result.versus.ci_low < 0 < result.versus.ci_high
    half = stats.t.ppf(0.975, 2) * np.std([0.95, 0.70, 0.85], ddof=1) / math.sqrt(3)
    assert result.normalised.estimate == pytest.approx(0.8333333)
    assert result.normalised.high - result.normalised.estimate == pytest.approx(half)
    assert result.passed() == {1: False, 2: True}
    summary = summary_rows([result]).set_index("statistic")
    assert summary.loc["criterion1_difference_over_a2c", "ci_note"] == "no evidence at n=3/3"
    assert summary.loc["criterion2_normalized_score", "ci_note"] == "pass"


def test_a_nan_normalised_score_makes_total_reward_the_measure():
    setting = "halfcheetah-dir episode_steps=200"
    nan = [math.nan] * 3
    runs = frame(
        runs_of(setting, "rl2", nan, totals=[120.0, 130.0, 125.0]),
        runs_of(setting, "lstm-a2c", nan, totals=[150.0, 155.0, 160.0]),
        runs_of(setting, "a2c", nan, totals=[20.0, 25.0, 30.0]),
    )
    result = only(check(runs), setting)
    assert result.measure == "total_reward" and result.best == "lstm-a2c"
    assert result.versus.difference == pytest.approx(130.0) and result.versus.label == "better"
    assert result.normalised is None and result.passed() == {1: True, 2: None}
    row = criteria_table([result]).iloc[0]
    assert row["measure"] == "total reward" and row["criteria"] == "1 ✓ 2 ?"
    assert row["normalised [95% CI]"] == "no normalised score: unchecked"
    summary = summary_rows([result]).set_index("statistic")
    assert "total reward" in summary.loc["criterion1_difference_over_a2c", "ci_method"]
    assert summary.loc["criterion2_normalized_score", "ci_note"] == "no normalised score"


def test_later_episodes_are_compared_with_the_first_by_a_paired_t_interval():
    improving = [[-0.2, 0.5, 0.6], [-0.1, 0.4, 0.7], [-0.3, 0.6, 0.5]]
    worse = [[0.8, 0.5, 0.4], [0.7, 0.6, 0.3], [0.9, 0.4, 0.5]]
    noisy = [[0.0, 0.5, 0.5], [0.3, 0.0, 0.0], [0.0, 0.1, 0.1]]  # d = 0.5, -0.3, 0.1
    other, third = MAZE.replace("size=5", "size=7"), MAZE.replace("size=5", "size=9")
    runs = frame(
        runs_of(MAZE, "rl2", [0.5, 0.6, 0.55], curves=improving),
        runs_of(other, "rl2", [0.5, 0.6, 0.55], curves=worse),
        runs_of(third, "rl2", [0.5, 0.6, 0.55], curves=noisy),
    )
    results = check(runs)
    gain, loss, unsure = only(results, MAZE), only(results, other), only(results, third)
    assert unsure.later.estimate == pytest.approx(0.1) and unsure.later.low < 0
    assert unsure.passed()[3] is False  # a positive mean whose CI reaches 0 does not pass
    d = [np.mean(c[1:]) - c[0] for c in improving]
    low, high = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert gain.later.estimate == pytest.approx(np.mean(d)) and gain.later.n == 3
    assert (gain.later.low, gain.later.high) == pytest.approx((low, high))
    assert gain.last.estimate == pytest.approx(np.mean([c[-1] - c[0] for c in improving]))
    assert gain.passed()[3] is True and loss.passed()[3] is False
    assert loss.later.estimate < 0
    assert gain.versus is None and gain.passed()[1] is None  # no a2c runs: unchecked
    table = criteria_table(results).set_index("setting")
    assert table.loc[MAZE, "later − first episode [paired 95% CI]"].endswith("CI above 0: pass")
    assert table.loc[other, "later − first episode [paired 95% CI]"].endswith("reaches 0: fail")
    assert table.loc[MAZE, "vs a2c: difference [95% CI]"] == "no a2c runs: unchecked"
    rows = summary_rows(results)
    later = rows[rows["statistic"] == "criterion3_later_minus_first_episode"]
    assert list(later["ci_note"]) == ["pass", "fail", "fail"]


def test_a_single_episode_family_has_no_criterion_3_and_a2c_alone_has_no_best():
    single = "cartpole-params episodes=1"
    lonely = "pendulum-params episodes=1"
    runs = frame(
        runs_of(single, "rl2", [0.9, 0.85, 0.88], curves=[[90.0], [85.0], [88.0]]),
        runs_of(single, "a2c", [0.3, 0.35, 0.32], curves=[[30.0], [35.0], [32.0]]),
        runs_of(lonely, "a2c", [0.1, 0.1, 0.2]),
    )
    results = check(runs)
    result = only(results, single)
    assert result.later is None and result.last is None
    assert result.passed() == {1: True, 2: True}
    assert only(results, lonely).best is None
    table = criteria_table(results).set_index("setting")
    assert table.loc[single, "later − first episode [paired 95% CI]"].startswith("—")
    assert table.loc[lonely, "best meta-learner"] == "none (only a2c)"
    rows = summary_rows(results)
    assert set(rows["setting"]) == {single} and set(rows["scope"]) == {SCOPE}
    assert not rows["statistic"].str.startswith("criterion3").any()


def ledger_row(setting: str, algorithm: str, kind: str, seed: int, score: float, curve):
    """A run record as a ledger stores it (the columns ``read_records`` requires)."""
    protocol = {"eval_trials": 20, "eval_seed": None, "episodes_per_trial": len(curve)}
    return {
        "algorithm": algorithm,
        "kind": kind,
        "task": "bernoulli-bandit",
        "task_version": 1,
        "setting": setting,
        "task_params": json.dumps({"arms": 5, "pulls": 10}),
        "seed": seed,
        "config_hash": f"{algorithm}-hash",
        "trials": 20,
        "total_reward": 10 * score,
        "normalized_score": score,
        "per_episode_returns": json.dumps(curve),
        "protocol": json.dumps(protocol),
    }


@pytest.fixture
def ledger(tmp_path):
    """A ledger of rl2, a2c and random on one bandit setting, 3 seeds, in ``tmp_path/runs``."""
    rows = []
    for seed in range(3):
        rows.append(ledger_row(BANDIT, "rl2", "learned", seed, 0.5 + 0.01 * seed, [0.5, 0.6, 0.7]))
        rows.append(ledger_row(BANDIT, "a2c", "learned", seed, 0.01 * seed, [0.5, 0.5, 0.5]))
        rows.append(ledger_row(BANDIT, "random", "classical", seed, 0.0, [0.5, 0.5, 0.5]))
    path = tmp_path / "runs" / "bandit.csv"
    write_records(path, typed(pd.DataFrame(rows)))
    return path


def test_table_from_records_with_criteria_prints_the_section_and_refuses_classical_runs(
    ledger, tmp_path, capsys
):
    pattern = str(ledger.parent / "*.csv")
    assert main(["table", "--from", pattern, "--criteria"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# `runs`: comparison table")  # named after the glob's folder
    section = out.split("## Reference criteria", 1)[1]
    [row] = [line for line in section.splitlines() if line.startswith(f"| {BANDIT} |")]
    assert "| rl2 | normalised score | 3 |" in row and "better: pass" in row
    assert "< 0.8: fail" in row and "CI above 0: pass" in row and "1 ✓ 2 ✗ 3 ✓" in row
    assert f"--from {pattern} --criteria" in out or f"'{pattern}' --criteria" in out

    out_csv = tmp_path / "table.csv"
    args = ["table", "--from", str(ledger), "--criteria", "--format", "csv", "--out", str(out_csv)]
    assert main(args) == 0
    summary = pd.read_csv(out_csv)
    criteria = summary[summary["scope"] == SCOPE].set_index("statistic")
    assert criteria.loc["criterion1_difference_over_a2c", "ci_note"] == "better"
    assert criteria.loc["criterion3_later_minus_first_episode", "estimate"] == pytest.approx(0.15)
    capsys.readouterr()

    refused = tmp_path / "refused.md"
    args = ["table", "--from", str(ledger), "--where", "kind=classical", "--criteria"]
    assert main([*args, "--out", str(refused)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--criteria checks learned runs" in err
    assert "algorithms: random" in err and not refused.exists()
