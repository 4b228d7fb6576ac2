"""Continuous (Box) actions on a tiny pure-torch family: phi, sampling, gym face and every learner.

The family (``reach-1d``, :mod:`continuous_support`) is registered only for these tests.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from continuous_support import Reach1D
from run_support import short_run

from baselines.networks import FeedForwardActorCritic, RecurrentActorCritic
from baselines.policy import RandomPolicy
from benchmark.run.evaluation import evaluate_policy
from tasks import TASKS, MetaRLObservation, TrialEngine, make_task, phi_dim, task_generator
from tasks.gym_env import MetaRLEnv

ALGORITHMS = ("rl2", "lstm-a2c", "lstm-a3c", "a2c")


@pytest.fixture
def reach(monkeypatch):
    """Register ``reach-1d`` for one test only."""
    monkeypatch.setitem(TASKS, Reach1D.name, Reach1D)
    return make_task(Reach1D.name, steps=3, episodes=2)


def test_phi_holds_the_clipped_previous_action_and_zeros_at_a_trial_start(reach):
    assert reach.continuous_actions and phi_dim(reach) == 1 + 1 + 2
    engine = TrialEngine(reach, 2, task_generator(0, "train"))
    view = engine.start()
    assert torch.equal(view.phi, torch.zeros(2, 4)) and view.prev_action.shape == (2, 1)
    actions = [[[0.4], [-3.0]], [[2.0], [0.1]], [[0.3], [0.3]]] * 2
    for t, action in enumerate(actions):
        transition, view = engine.step(torch.tensor(action))
        if t == len(actions) - 1:  # the trial ended: a new task, no previous action
            assert bool(view.reset.all()) and torch.equal(view.phi[:, 1:], torch.zeros(2, 3))
        else:
            torch.testing.assert_close(view.phi[:, 1:2], torch.tensor(action).clamp(-1, 1))
            torch.testing.assert_close(view.phi[:, 2], transition.reward)


def test_gaussian_head_samples_reproducibly_and_scores_its_own_samples():
    net = RecurrentActorCritic(4, 2, 8, "gru", continuous=True)
    assert net.log_std.shape == (2,) and "log_std" in dict(net.named_parameters())
    assert "log_std" not in dict(RecurrentActorCritic(4, 2, 8).named_parameters())
    mean = torch.zeros(5000, 2)
    with torch.no_grad():
        net.log_std.copy_(torch.tensor([math.log(0.5), 0.0]))
    first = net.sample_action(mean, torch.Generator().manual_seed(1))
    again = net.sample_action(mean, torch.Generator().manual_seed(1))
    assert torch.equal(first, again) and first.dtype == torch.float32
    torch.testing.assert_close(first.std(0), torch.tensor([0.5, 1.0]), atol=0.03, rtol=0)
    expected = torch.distributions.Normal(0.0, torch.tensor([0.5, 1.0])).log_prob(first).sum(-1)
    torch.testing.assert_close(net.log_prob(mean, first), expected)
    feed_forward = FeedForwardActorCritic(3, 2, 8, continuous=True)
    assert feed_forward.distribution(torch.zeros(7, 2)).sample().shape == (7, 2)


def test_references_bracket_random_and_oracle(reach):
    random_result = evaluate_policy(RandomPolicy(), reach, 4000, seed=0)
    assert abs(random_result.normalized_score) < 0.05
    oracle = make_task(Reach1D.name, steps=3, episodes=2)

    class Oracle:
        def begin(self, family, batch_size, generator):
            pass

        def act(self, view):
            return oracle.oracle_action(view.tasks, view.state)

    torch.testing.assert_close(
        evaluate_policy(Oracle(), reach, 500, seed=0).normalized_score, 1.0, atol=1e-5, rtol=0
    )


def test_gym_face_has_a_box_action_space_and_appends_the_action(reach):
    env = MetaRLObservation(MetaRLEnv(Reach1D.name, steps=3, episodes=2))
    assert isinstance(env.action_space, gym.spaces.Box) and env.action_space.shape == (1,)
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape == (4,)
    assert np.array_equal(obs[1:], np.zeros(3, np.float32))
    obs, reward, terminated, _, info = env.step(np.array([5.0], np.float32))
    assert obs[1] == 1.0 and obs[2] == np.float32(reward) and not terminated  # clipped action
    assert env.observation_space.contains(obs)
    for _ in range(5):
        *_, terminated, _, info = env.step(env.action_space.sample())
    assert terminated and info["episode_index"] == 2


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_every_algorithm_trains_a_gaussian_policy_through_the_runner(reach, algo):
    overrides = ["task.steps=3", "task.episodes=2", "algo.batch_size=8", "algo.hidden_size=16"]
    overrides += ["trainer.env_steps=480", "eval.trials=64"]
    if algo == "lstm-a3c":
        overrides.append("algo.workers=1")
    run = short_run(algo, Reach1D.name, overrides)
    module, result = run.outcome.module, run.outcome.result
    assert int(module.env_steps) == 480  # 10 batches of 8 trials x 2 episodes x 3 steps
    assert run.finite("train/policy_loss") and run.finite("train/value_loss")
    assert run.finite("train/entropy")
    # the learned log-std moved away from its initial value: the Gaussian head was trained
    assert not torch.equal(module.network.log_std.detach(), torch.zeros(1))
    assert math.isfinite(result.mean_total_reward) and math.isfinite(result.normalized_score)
    assert len(result.per_episode_returns) == 2
