"""One fast run through the real Trainer and the real sqlite MLflow store, then evaluate it back."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient
from pytorch_lightning.utilities.exceptions import SIGTERMException

from benchmark.cli import main
from benchmark.run.runner import interrupted_exit_code
from tasks import make_task, task_generator

FAST = [
    "task.arms=3",
    "task.pulls=5",
    "algo.batch_size=16",
    "algo.log_every=1",
    "trainer.env_steps=2000",
    "eval.trials=200",
]


def run_json(argv, capsys) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_run_logs_everything_and_evaluate_reads_the_checkpoint_back(tracking_uri, capsys):
    summary = run_json(["run", "lstm-a2c", "bernoulli-bandit", *FAST, "--json"], capsys)
    assert set(summary) >= {
        "run_id",
        "mean_total_reward",
        "stderr",
        "trials",
        "normalized_score",
        "env_steps",
        "train_seconds",
    }
    assert summary["trials"] == 200 and summary["env_steps"] == 2000  # 25 batches of 16 x 5
    # The normalised score from the reference scores of the run's held-out tasks (the first 200
    # of seed 0's test stream), computed here from the family.
    family = make_task("bernoulli-bandit", arms=3, pulls=5)
    references = family.reference_scores(family.sample(200, task_generator(0, "test")))
    random_ref, oracle_ref = (references[k].mean().item() for k in ("random", "oracle"))
    expected = (summary["mean_total_reward"] - random_ref) / (oracle_ref - random_ref)
    assert summary["normalized_score"] == pytest.approx(expected)

    client = MlflowClient(tracking_uri)
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["task.arms"] == "3" and run.data.params["algo.hidden_size"] == "48"
    assert {"git_commit", "git_dirty", "config_hash"} <= set(run.data.tags)
    history = client.get_metric_history(summary["run_id"], "train/reward_per_step")
    assert [m.step for m in history] == [16 * 5 * (i + 1) for i in range(len(history))]
    artifacts = {a.path for a in client.list_artifacts(summary["run_id"])}
    assert {"config.yaml", "evaluation.json", "checkpoints"} <= artifacts
    assert client.list_artifacts(summary["run_id"], "checkpoints")[0].path.endswith("final.ckpt")

    argv = ["evaluate", summary["run_id"], "bernoulli-bandit", "task.arms=3", "task.pulls=5"]
    evaluated = run_json([*argv, "--trials", "200", "--seed", "0", "--json"], capsys)
    assert evaluated["policy"] == summary["run_id"] and evaluated["trials"] == 200
    # the same checkpoint, tasks and seed as the run's own evaluation: the same numbers
    assert evaluated["mean_total_reward"] == summary["mean_total_reward"]
    assert set(evaluated) >= {"task", "params", "seed", "stderr", "normalized_score"}


def test_same_config_and_seed_give_identical_numbers(tracking_uri, capsys):
    first = run_json(["run", "lstm-a2c", "bernoulli-bandit", *FAST, "seed=3", "--json"], capsys)
    second = run_json(["run", "lstm-a2c", "bernoulli-bandit", *FAST, "seed=3", "--json"], capsys)
    other = run_json(["run", "lstm-a2c", "bernoulli-bandit", *FAST, "seed=4", "--json"], capsys)
    for key in ("mean_total_reward", "stderr", "normalized_score"):
        assert first[key] == second[key]
    assert first["run_id"] != second["run_id"]
    assert other["mean_total_reward"] != first["mean_total_reward"]


def test_reference_policies_bracket_the_normalised_score(tracking_uri, capsys):
    base = ["bernoulli-bandit", "task.arms=5", "task.pulls=10", "--trials", "2000", "--json"]
    random_result = run_json(["evaluate", "random", *base], capsys)
    oracle_result = run_json(["evaluate", "oracle", *base], capsys)
    assert abs(random_result["normalized_score"]) < 0.05
    assert abs(oracle_result["normalized_score"] - 1.0) < 0.05
    assert abs(random_result["mean_total_reward"] - 5.0) < 4 * random_result["stderr"]


@pytest.mark.parametrize(
    ("stop", "code"),
    [
        (SIGTERMException(), 143),
        (KeyboardInterrupt(), 130),
        (SystemExit(1), 130),
        (SystemExit(3), 3),
    ],
)
def test_an_interrupted_run_never_exits_with_status_0(stop, code):
    assert interrupted_exit_code(stop) == code
