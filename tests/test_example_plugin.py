"""The example plug-in (examples/new_algorithm, GRU-A2C): it loads by ``module:Class``, trains
through the real CLI, Trainer and MLflow store, and its loss is a pure function.

Whether it learns is measured, not tested here (minutes of training): the example's README has
the numbers and the command.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from run_support import short_run

from benchmark.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "new_algorithm"
GRU = "my_pkg.gru_a2c:GRUA2C"


@pytest.fixture
def plugin(monkeypatch):
    """The example's module, imported from its folder as a user's ``PYTHONPATH`` would."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from my_pkg import gru_a2c

    return gru_a2c


def test_runs_by_module_and_class_through_the_cli(plugin, tracking_uri, capsys):
    argv = ["run", GRU, "bernoulli-bandit", "task.arms=3", "task.pulls=10"]
    argv += ["trainer.env_steps=3200", "eval.trials=200", "algo.log_every=1", "seed=5"]
    assert main([*argv, "--json", "--tracking-uri", tracking_uri]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["env_steps"] == 3200  # 5 updates of 64 trials x 10 pulls
    assert summary["trials"] == 200
    assert 0.0 <= summary["mean_total_reward"] <= 10.0

    run = MlflowClient(tracking_uri).get_run(summary["run_id"])
    params = run.data.params
    assert params["algo.batch_size"] == "64" and params["algo.optimizer"] == "adam"
    assert params["algo.gae_lambda"] == "1.0"
    history = MlflowClient(tracking_uri).get_metric_history(run.info.run_id, "train/policy_loss")
    assert len(history) == 5 and history[-1].step == 3200
    entropy = MlflowClient(tracking_uri).get_metric_history(run.info.run_id, "train/entropy")
    assert all(0.0 < m.value <= torch.log(torch.tensor(3.0)).item() + 1e-5 for m in entropy)


def test_a_bad_setting_of_the_plugin_is_one_line_and_exit_2(plugin, tracking_uri, capsys):
    argv = ["run", GRU, "bernoulli-bandit", "algo.gae_lambda=1.5", "--tracking-uri", tracking_uri]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "algo.gae_lambda must be in [0, 1], got 1.5" in err


def segment(steps: int = 6, batch: int = 4, actions: int = 3, seed: int = 0):
    """A random rollout segment and network outputs of its shape (two trial ends inside)."""
    generator = torch.Generator().manual_seed(seed)
    done = torch.zeros(steps, batch, dtype=torch.bool)
    done[2, 0] = done[4, 3] = True
    data = {
        "rewards": torch.randint(0, 2, (steps, batch), generator=generator).float(),
        "actions": torch.randint(0, actions, (steps, batch), generator=generator),
        "trial_done": done,
    }
    logits = torch.randn(steps, batch, actions, generator=generator, requires_grad=True)
    values = torch.randn(steps, batch, generator=generator, requires_grad=True)
    bootstrap = torch.randn(batch, generator=generator)
    return logits, values, bootstrap, data


def test_the_loss_is_pure_and_its_gradients_reach_policy_and_critic(plugin):
    cfg = plugin.GRUA2CConfig()
    logits, values, bootstrap, data = segment()
    before = {key: value.clone() for key, value in data.items()}
    loss, parts = plugin.gae_a2c_loss(logits, values, bootstrap, data, cfg)
    again, parts_again = plugin.gae_a2c_loss(logits, values, bootstrap, data, cfg)
    assert torch.equal(loss, again)
    assert all(torch.equal(parts[k], parts_again[k]) for k in parts)
    assert all(torch.equal(data[k], before[k]) for k in data)  # inputs untouched
    assert set(parts) == {"policy_loss", "value_loss", "entropy"}

    loss.backward()
    assert logits.grad is not None and values.grad is not None
    assert logits.grad.abs().sum() > 0 and values.grad.abs().sum() > 0
    # Another reward changes the loss: it is a function of the segment, not of hidden state.
    data["rewards"][0, 0] += 1.0
    assert not torch.equal(plugin.gae_a2c_loss(logits, values, bootstrap, data, cfg)[0], loss)


def test_the_policy_gradient_weights_each_action_by_its_gae_advantage(plugin):
    """With one-step TD errors (lambda 0), no entropy and raw advantages, d loss / d logits of
    step t is -(r_t + gamma V_{t+1} (1 - done_t) - V_t) (onehot(a_t) - softmax) / (T B)."""
    cfg = replace(
        plugin.GRUA2CConfig(), gae_lambda=0.0, entropy_coef=0.0, normalize_advantages=False
    )
    logits, values, bootstrap, data = segment()
    loss, _ = plugin.gae_a2c_loss(logits, values, bootstrap, data, cfg)
    loss.backward()

    v = values.detach()
    next_v = torch.cat([v[1:], bootstrap[None]]) * (~data["trial_done"])
    delta = data["rewards"] + cfg.gamma * next_v - v
    onehot = torch.nn.functional.one_hot(data["actions"], logits.shape[-1]).float()
    expected = -delta[..., None] * (onehot - logits.detach().softmax(-1)) / delta.numel()
    torch.testing.assert_close(logits.grad, expected)


@pytest.mark.slow  # about a minute of training on one core
def test_it_learns_to_explore_on_five_arms_at_its_defaults(plugin):
    """At its defaults, 1M env steps on 5 x 10 (tune seed 100) take it far from random (normalised
    0; one run's SE is about 0.02): the tuning runs reached 0.42 there."""
    run = short_run(
        GRU,
        "bernoulli-bandit",
        ["task.arms=5", "task.pulls=10", "trainer.env_steps=1000000", "seed=100"],
    )
    assert run.outcome.result.normalized_score > 0.25
