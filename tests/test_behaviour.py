"""Behavioural statistics in the evaluation (``TaskFamily.behaviour_recorder``): two-step's stay
table through ``evaluate``, a run, a classical sweep and its run records, and the stay pattern
summarised over seeds."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from mlflow.tracking import MlflowClient
from run_support import short_run
from store_support import fresh_store

from baselines.strategies import get_strategy
from benchmark.cli import main
from benchmark.reporting.behaviour import record_behaviours, stay_pattern
from benchmark.reporting.records import read_records, records_from_store
from benchmark.run.evaluation import evaluate_policy, evaluation_record, result_metrics
from benchmark.run.policies import behaviour_lines
from benchmark.run.runner import eval_metrics
from tasks import ConfigError, make_task
from tasks.two_step import STAY_CELLS

T_975_2 = 4.302652729911275
"""The 0.975 quantile of Student's t with 2 degrees of freedom (3 seeds)."""


def _stays(behaviour: dict) -> list[float]:
    return [behaviour[f"stay_{cell}"] for cell in STAY_CELLS]


def test_a_family_without_a_recorder_reports_no_behaviour():
    family = make_task("bernoulli-bandit", arms=3, pulls=5)
    assert family.behaviour_recorder() is None
    result = evaluate_policy(get_strategy("random").build(family), family, 8, seed=0)
    assert result.behaviour is None and evaluation_record(result, None, None)["behaviour"] is None
    assert not [key for key in result_metrics(result) if "behaviour" in key]


def test_evaluate_prints_the_stay_table_of_both_distributions(capsys):
    # The oracle goes where the reward is: with no reversals it never switches; with a reversal
    # after every episode (the held-out distribution) it always does.
    argv = ["evaluate", "oracle", "two-step", "task.episodes=12", "task.reversal_prob=0"]
    assert main([*argv, "eval.task.reversal_prob=1", "--trials", "30", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    behaviour, heldout = payload["behaviour"], payload["heldout"]["behaviour"]
    assert _stays(behaviour) == [1.0] * 4 and _stays(heldout) == [0.0] * 4
    for record in (behaviour, heldout):
        assert sum(record[f"pairs_{cell}"] for cell in STAY_CELLS) == 30 * 11
        assert record["pairs_common_rewarded"] > record["pairs_rare_rewarded"] > 0
    assert main([*argv, "eval.task.reversal_prob=1", "--trials", "5"]) == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    train, heldout = lines.index("behaviour:"), lines.index("heldout behaviour:")
    for first, stay in ((train, "1.000"), (heldout, "0.000")):
        shown = [line.split(" (n=") for line in lines[first + 1 : first + 5]]
        assert [text for text, _ in shown] == [
            f"stay {cell.replace('_', ' ')}: {stay}" for cell in STAY_CELLS
        ]
        assert sum(int(count.rstrip(")")) for _, count in shown) == 5 * 11  # every episode pair
    assert not any("pairs" in line or "stay_" in line for line in lines)  # no raw dict


def test_behaviour_lines_pair_each_statistic_with_its_count_whatever_the_keys():
    behaviour = {"stay_a": 0.5, "switch_b": float("nan"), "pairs_a": 12, "trials": 3, "n_c": 4}
    assert behaviour_lines(behaviour) == [
        "stay a: 0.500 (n=12)",
        "switch b: nan",
        "trials: 3",
        "n c: 4",
    ]


def test_a_run_logs_the_stay_table_of_both_evaluations_and_writes_it_to_its_record():
    overrides = ["task.episodes=6", "trainer.env_steps=240", "eval.trials=10"]
    run = short_run("lstm-a2c", "two-step", [*overrides, "eval.task.reversal_prob=1"])
    outcome, metrics = run.outcome, eval_metrics(run.outcome)
    for prefix, result in (("eval", outcome.result), ("heldout", outcome.heldout)):
        pairs = [metrics[f"{prefix}/behaviour/pairs_{cell}"] for cell in STAY_CELLS]
        assert sum(pairs) == 10 * 5
        for cell in STAY_CELLS:
            stay = metrics[f"{prefix}/behaviour/stay_{cell}"]
            assert stay == result.behaviour[f"stay_{cell}"]
            assert math.isnan(stay) or 0.0 <= stay <= 1.0
    record = evaluation_record(outcome.result, outcome.heldout, outcome.heldout_task)
    assert record["behaviour"] == outcome.result.behaviour
    assert record["heldout"]["behaviour"] == outcome.heldout.behaviour


def test_a_classical_sweep_logs_the_stay_table_and_its_records_carry_it(tmp_path, monkeypatch):
    uri = fresh_store(tmp_path)
    sweep = {
        "name": "stay",
        "seeds": 2,
        "overrides": {"eval.trials": 100},
        "strategies": ["oracle", "random"],
        "tasks": [{"name": "two-step", "variants": [{"episodes": 10, "reversal_prob": 0.0}]}],
    }
    (tmp_path / "stay.yaml").write_text(yaml.safe_dump(sweep))
    monkeypatch.chdir(tmp_path)
    assert main(["--tracking-uri", uri, "sweep", "stay.yaml", "--workers", "1"]) == 0
    records = records_from_store(uri, "stay")
    ledger = tmp_path / "ledger.csv"
    records.to_csv(ledger, index=False)
    records = read_records([ledger])
    client = MlflowClient(uri)
    for row in records.to_dict("records"):
        behaviour = json.loads(row["behaviour"])
        logged = client.get_run(row["run_id"]).data.metrics
        for key, value in behaviour.items():
            assert logged[f"eval/behaviour/{key}"] == value
        if row["algorithm"] == "oracle":
            assert _stays(behaviour) == [1.0] * 4
        else:  # random repeats its first-stage choice half of the time, whatever happened
            assert all(0.25 < stay < 0.75 for stay in _stays(behaviour))
    oracle = stay_pattern(record_behaviours(records[records["algorithm"] == "oracle"]))
    assert oracle["seeds"] == 2 and oracle["cells"]["rare_rewarded"] == {"mean": 1.0, "ci": 0.0}
    assert not oracle["model_based"]  # a contrast of exactly 0 is not the pattern


def _seeds(common: list[float], rare: list[float]) -> list[dict[str, float]]:
    """Per seed: unrewarded cells at 0.5, rewarded cells 0.5 + the given contrast."""
    return [
        {
            "stay_common_rewarded": 0.5 + c,
            "stay_common_unrewarded": 0.5,
            "stay_rare_rewarded": 0.5 + r,
            "stay_rare_unrewarded": 0.5,
            "pairs_common_rewarded": 100,
        }
        for c, r in zip(common, rare, strict=True)
    ]


def test_the_stay_pattern_over_seeds_has_t_intervals_and_both_contrasts():
    pattern = stay_pattern(_seeds([0.3, 0.4, 0.5], [-0.2, -0.3, -0.4]))
    half_width = T_975_2 * 0.1 / math.sqrt(3)
    assert pattern["seeds"] == 3 and pattern["model_based"]
    cells = pattern["cells"]
    assert cells["common_rewarded"]["mean"] == pytest.approx(0.9)
    assert cells["common_rewarded"]["ci"] == pytest.approx(half_width)
    assert cells["rare_unrewarded"] == {"mean": 0.5, "ci": 0.0}
    common, rare = pattern["contrasts"]["common"], pattern["contrasts"]["rare"]
    assert common["mean"] == pytest.approx(0.4) and common["ci"] == pytest.approx(half_width)
    assert rare["mean"] == pytest.approx(-0.3) and rare["ci"] == pytest.approx(half_width)
    assert common["holds"] and rare["holds"]


@pytest.mark.parametrize(
    ("common", "rare", "holds"),
    [
        ([0.3, 0.4, 0.5], [-0.1, -0.2, -0.3], (True, False)),  # rare CI reaches above 0
        ([0.3, 0.4, 0.5], [0.2, 0.3, 0.4], (True, False)),  # model-free: rare > 0
        ([-0.3, -0.4, -0.5], [-0.2, -0.3, -0.4], (False, True)),  # common < 0
        ([0.4], [-0.4], (False, False)),  # one seed: no interval, nothing shown
    ],
)
def test_the_pattern_is_shown_only_when_both_intervals_exclude_zero(common, rare, holds):
    pattern = stay_pattern(_seeds(common, rare))
    contrasts = pattern["contrasts"]
    assert (contrasts["common"]["holds"], contrasts["rare"]["holds"]) == holds
    assert not pattern["model_based"]


def test_a_summary_of_records_without_a_stay_table_is_a_one_line_error():
    with pytest.raises(ConfigError, match="lacks stay_rare_rewarded, stay_rare_unrewarded"):
        stay_pattern([{"stay_common_rewarded": 1.0, "stay_common_unrewarded": 0.0}])
    with pytest.raises(ConfigError, match="at least one run"):
        stay_pattern([])
