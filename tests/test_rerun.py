"""``run --from``: a stored run's resolved config runs again, with the same numbers on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow.tracking import MlflowClient

from benchmark.cli import main

FAST = ["task.arms=3", "task.pulls=5", "algo.batch_size=16", "trainer.env_steps=800"]
NUMBERS = ("mean_total_reward", "stderr", "normalized_score", "env_steps")


def run_json(argv, capsys) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_stored_run_reruns_with_the_same_numbers(tracking_uri, capsys):
    argv = ["run", "lstm-a2c", "bernoulli-bandit", *FAST, "seed=7", "eval.trials=300", "--json"]
    stored = run_json(argv, capsys)
    again = run_json(["run", "--from", stored["run_id"], "--json"], capsys)
    assert again["run_id"] != stored["run_id"]
    assert {k: again[k] for k in NUMBERS} == {k: stored[k] for k in NUMBERS}
    client = MlflowClient(tracking_uri)
    assert (
        client.get_run(again["run_id"]).data.params == client.get_run(stored["run_id"]).data.params
    )

    config = Path(client.download_artifacts(stored["run_id"], "config.yaml", "."))
    from_file = run_json(
        ["run", "lstm-a2c", "bernoulli-bandit", "--from", str(config), "--json"], capsys
    )
    assert {k: from_file[k] for k in NUMBERS} == {k: stored[k] for k in NUMBERS}


def test_a_different_commit_is_said_and_bad_sources_are_one_line(tracking_uri, capsys):
    stored = run_json(["run", "rl2", "bernoulli-bandit", *FAST, "--json"], capsys)
    MlflowClient(tracking_uri).set_tag(stored["run_id"], "git_commit", "0" * 40)
    assert main(["run", "--from", stored["run_id"], "--json"]) == 0
    err = capsys.readouterr().err
    assert "made at commit 000000000000" in err

    assert main(["run", "--from", stored["run_id"], "seed=3"]) == 2
    assert "takes no overrides" in capsys.readouterr().err
    assert main(["run", "--from", "f" * 32]) == 2
    assert capsys.readouterr().err.startswith("error: no run")
    Path("cfg.yaml").write_text("seed: 0\n")
    assert main(["run", "--from", "cfg.yaml"]) == 2
    assert "needs ALGO and TASK" in capsys.readouterr().err
