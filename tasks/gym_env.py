"""The gymnasium face of every family: ``gymnasium.make("metarl/<Name>-v0", **params)``.

One gymnasium episode is one whole trial: ``reset`` draws a new MDP, and ``terminated`` is True when
the trial's last episode ends. ``info`` carries the within-trial episode boundary. The
:class:`MetaRLObservation` wrapper appends (previous action one-hot, previous reward, done) so that
outside libraries (SB3, CleanRL) can train a recurrent policy on the same input phi as the suite.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from tasks.registry import TASKS, make_task
from tasks.trial import TrialEngine


class MetaRLEnv(gym.Env):
    """A single trial-level environment over one family (batch of one slot).

    Args:
        family: a registered family name.
        **params: the family's parameters, e.g. ``arms=5, pulls=10``.
    """

    metadata = {"render_modes": []}

    def __init__(self, family: str, **params: Any):
        self.family = make_task(family, **params)
        low, high = self.family.obs_bounds
        shape = (self.family.obs_dim,)
        self.observation_space = gym.spaces.Box(low, high, shape, np.float32)
        self.action_space = gym.spaces.Discrete(self.family.num_actions)
        self._engine: TrialEngine | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        generator = torch.Generator().manual_seed(int(self.np_random.integers(0, 2**62)))
        self._engine = TrialEngine(self.family, 1, generator, auto_reset=False)
        view = self._engine.start()
        return view.obs[0].numpy().astype(np.float32), {"episode_index": 0}

    def step(self, action):
        if self._engine is None:
            raise RuntimeError("call reset() before step()")
        transition, view = self._engine.step(torch.tensor([int(action)]))
        info = {
            "episode_done": bool(transition.episode_done[0]),
            "episode_index": int(view.episode_index[0]),
        }
        obs = view.obs[0].numpy().astype(np.float32)
        return obs, float(transition.reward[0]), bool(transition.trial_done[0]), False, info


class MetaRLObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Append (previous action one-hot, previous reward, done flag) to the observation.

    At the first step of a trial the previous action is all zeros and reward and done are 0.
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        self._num_actions = int(env.action_space.n)
        base = env.observation_space
        low = np.concatenate([base.low, np.zeros(self._num_actions), [-np.inf, 0.0]])
        high = np.concatenate([base.high, np.ones(self._num_actions), [np.inf, 1.0]])
        self.observation_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32))
        self._extra = np.zeros(self._num_actions + 2, np.float32)

    def reset(self, **kwargs):
        self._extra = np.zeros(self._num_actions + 2, np.float32)
        return super().reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        extra = np.zeros(self._num_actions + 2, np.float32)
        extra[int(action)] = 1.0
        extra[-2] = reward
        extra[-1] = float(info["episode_done"])
        self._extra = extra
        return self.observation(obs), reward, terminated, truncated, info

    def observation(self, observation):
        return np.concatenate([observation, self._extra]).astype(np.float32)


def register_gym_envs() -> None:
    """Register every family in gymnasium's registry (idempotent)."""
    for name, cls in TASKS.items():
        if cls.gym_id not in gym.registry:
            gym.register(id=cls.gym_id, entry_point=MetaRLEnv, kwargs={"family": name})
