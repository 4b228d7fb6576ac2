"""The task registry and the gymnasium face of every family."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from tasks import TASKS, ConfigError, MetaRLObservation, get_task_class, make_task


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="valid tasks: .*bernoulli-bandit.*dependent-bandit"):
        get_task_class("bernouli-bandit")


def test_unknown_task_parameter_is_named():
    with pytest.raises(ConfigError, match="task.armz"):
        make_task("bernoulli-bandit", armz=3)


SMALL_PARAMS = {
    "bernoulli-bandit": {"pulls": 5},
    "dependent-bandit": {"pulls": 5},
    "tabular-mdp": {"horizon": 3, "episodes": 2},
    "two-step": {"episodes": 3},
    "maze": {"size": 3, "max_steps": 20, "pool": 32},
    "cartpole-params": {"max_steps": 50},
    "pendulum-params": {"max_steps": 50},
    "acrobot-params": {"max_steps": 50},
    "halfcheetah-vel": {"episode_steps": 10},
    "halfcheetah-params": {"episode_steps": 10},
    "hopper-params": {"episode_steps": 10},
}
"""Short trials per family for check_env (a family not listed runs with its defaults)."""


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_family_is_registered_in_gymnasium_and_passes_check_env(name):
    params = SMALL_PARAMS.get(name, {})
    env = gym.make(TASKS[name].gym_id, **params)
    check_env(env.unwrapped, skip_render_check=True)
    wrapped = MetaRLObservation(gym.make(TASKS[name].gym_id, **params))
    check_env(wrapped, skip_render_check=True)


def test_a_gym_episode_is_one_trial_and_the_wrapper_appends_phi():
    env = MetaRLObservation(gym.make("metarl/BernoulliBandit-v0", arms=3, pulls=4))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (1 + 3 + 2,) and not obs.any()
    terminated, steps = False, 0
    while not terminated:
        obs, reward, terminated, truncated, info = env.step(2)
        steps += 1
        np.testing.assert_array_equal(obs[1:4], [0, 0, 1])
        assert obs[4] == reward and obs[5] == 1.0 and info["episode_done"]
    assert steps == 4 and not truncated


def test_gym_reset_draws_a_new_mdp_and_is_seeded():
    env = gym.make("metarl/BernoulliBandit-v0", arms=5, pulls=3).unwrapped
    env.reset(seed=1)
    first = env._engine.tasks["p"].clone()
    env.reset()
    second = env._engine.tasks["p"].clone()
    env.reset(seed=1)
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(env._engine.tasks["p"], first)
