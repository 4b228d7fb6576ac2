"""The gymnasium face of every family: ``gymnasium.make("metarl/<Name>-v0", **params)``.

One gymnasium episode is one whole trial: ``reset`` draws a new MDP, and ``terminated`` is True when
the trial's last episode ends. ``info`` carries the within-trial episode boundary. The
:class:`MetaRLObservation` wrapper appends (previous action one-hot, or the action vector for a
Box space; previous reward; done) so that outside libraries (SB3, CleanRL) can train a recurrent
policy on the same input phi as the suite.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from tasks.base import require
from tasks.registry import TASKS, make_task
from tasks.trial import TrialEngine


class MetaRLEnv(gym.Env):
    """A single trial-level environment over one family (batch of one slot).

    Args:
        family: a registered family name.
        render_mode: one of the family's ``render_modes`` (``ansi``, ``rgb_array``), or None.
        **params: the family's parameters, e.g. ``arms=5, pulls=10``.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"]}
    """The modes this face can serve; an instance narrows them to its family's ``render_modes``."""

    def __init__(self, family: str, render_mode: str | None = None, **params: Any):
        self.family = make_task(family, **params)
        modes = list(getattr(self.family, "render_modes", ()))
        self.metadata = {"render_modes": modes, "render_fps": 4}
        require(
            render_mode is None or render_mode in modes,
            f"render_mode '{render_mode}' is not supported by {family}; "
            f"valid modes: {', '.join(modes) or 'none'}",
        )
        self.render_mode = render_mode
        low, high = self.family.obs_bounds
        shape = (self.family.obs_dim,)
        self.observation_space = gym.spaces.Box(low, high, shape, np.float32)
        self.action_space = action_space(self.family)
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
        transition, view = self._engine.step(engine_action(self.action_space, action))
        info = {
            "episode_done": bool(transition.episode_done[0]),
            "episode_index": int(view.episode_index[0]),
        }
        obs = view.obs[0].numpy().astype(np.float32)
        return obs, float(transition.reward[0]), bool(transition.trial_done[0]), False, info

    def render(self):
        """The family's drawing of the current state (``render_mode``), or None without one."""
        if self.render_mode is None or self._engine is None:
            return None
        return self.family.render(self._engine.tasks, self._engine.state, 0, self.render_mode)


def action_space(family) -> gym.spaces.Space:
    """Discrete(num_actions), or a Box of the family's bounds when its actions are continuous."""
    if family.continuous_actions:
        low, high = family.action_bounds
        return gym.spaces.Box(low, high, (family.action_dim,), np.float32)
    return gym.spaces.Discrete(family.num_actions)


def engine_action(space: gym.spaces.Space, action) -> torch.Tensor:
    """One gymnasium action as the trial engine's batch of one: long [1] or float [1, dim]."""
    if isinstance(space, gym.spaces.Box):
        return torch.as_tensor(np.asarray(action, np.float32)).reshape(1, -1)
    return torch.tensor([int(action)])


class MetaRLObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Append (previous action one-hot, previous reward, done flag) to the observation.

    At the first step of a trial the previous action is all zeros and reward and done are 0.
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        space = env.action_space
        self._continuous = isinstance(space, gym.spaces.Box)
        self._num_actions = int(space.shape[0] if self._continuous else space.n)
        # A continuous action enters as its clipped vector (zeros before the first action).
        action_low = np.minimum(space.low, 0.0) if self._continuous else 0.0
        action_high = np.maximum(space.high, 0.0) if self._continuous else 1.0
        base = env.observation_space
        low = np.concatenate([base.low, np.zeros(self._num_actions) + action_low, [-np.inf, 0.0]])
        high = np.concatenate([base.high, np.zeros(self._num_actions) + action_high, [np.inf, 1]])
        self.observation_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32))
        self._extra = np.zeros(self._num_actions + 2, np.float32)

    def reset(self, **kwargs):
        self._extra = np.zeros(self._num_actions + 2, np.float32)
        return super().reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        extra = np.zeros(self._num_actions + 2, np.float32)
        if self._continuous:
            extra[:-2] = np.clip(action, self.action_space.low, self.action_space.high)
        else:
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
