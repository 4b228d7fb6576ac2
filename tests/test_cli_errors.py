"""Bad input: one line naming the problem and the valid choices, exit status 2, nothing written."""

from __future__ import annotations

import pytest

from benchmark.cli import main
from benchmark.run.config import load_run_config


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "lstm-a2c", "no-such-task"], "valid tasks: acrobot-params, bernoulli-bandit"),
        (["run", "no-such-algo", "bernoulli-bandit"], "valid algorithms:"),
        (["run", "lstm-a2c", "bernoulli-bandit", "task.armz=5"], "task.armz"),
        (["run", "lstm-a2c", "bernoulli-bandit", "algo.lrr=0.1"], "algo.lrr"),
        (["run", "lstm-a2c", "bernoulli-bandit", "task.arms=0"], "task.arms must be >= 2"),
        (["run", "lstm-a2c", "bernoulli-bandit", "task.arms=2.5"], "task.arms"),
        (["run", "lstm-a2c", "bernoulli-bandit", "task.arms=five"], "task.arms"),
        (["run", "lstm-a2c", "dependent-bandit", "task.difficulty=extreme"], "easy"),
        (["run", "lstm-a2c", "bernoulli-bandit", "arms"], "not key=value"),
        (
            ["run", "lstm-a3c", "bernoulli-bandit", "algo.clip=0.1"],
            "unknown key 'algo.clip'",
        ),
        (["run", "lstm-a2c", "bernoulli-bandit", "algo.gae_lambda=1.5"], "algo.gae_lambda"),
        (["evaluate", "no-such-policy", "bernoulli-bandit"], "valid strategies:"),
        (["evaluate", "random", "bernoulli-bandit", "--trials", "0"], "--trials must be >= 1"),
        (["evaluate", "random", "bernoulli-bandit", "--trials", "x"], "invalid int value"),
        (["no-such-command"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_and_creates_nothing(
    argv, needle, tracking_uri, tmp_path, capsys
):
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "mlartifacts").exists()


def test_overrides_and_pair_defaults_layer_in_order():
    spec = load_run_config("lstm-a2c", "bernoulli-bandit", ["task.pulls=10", "seed=4"])
    assert spec.seed == 4 and spec.config.task.pulls == 10
    assert spec.config.trainer.env_steps == 2_560_000  # the pair YAML's `when: pulls=10` entry
    spec = load_run_config("lstm-a2c", "bernoulli-bandit", ["task.pulls=10", "algo.batch_size=7"])
    assert spec.config.algo.batch_size == 7  # the user's override wins over the YAML
    other = load_run_config("lstm-a2c", "bernoulli-bandit", ["task.pulls=11"])
    assert other.config_hash() != spec.config_hash()
