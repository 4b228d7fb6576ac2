"""``halfcheetah-vel``, ``halfcheetah-dir`` and ``halfcheetah-params``: HalfCheetah-v5 families.

``halfcheetah-vel`` draws a target forward velocity per trial (cheetah-vel of MAML, PEARL, ProMP
and VariBAD); ``halfcheetah-dir`` draws a running direction, forward or backward (cheetah-dir);
``halfcheetah-params`` keeps gymnasium's reward and scales masses, damping and friction per trial.

Protocol of the two goal families, as in those papers' code: 200-step episodes, 2 episodes per
trial on one goal, control cost 0.05 * |a|^2 (MAML's 0.5 * 0.1).

``task.reveal=true`` appends the task to the observation: the target velocity divided by the
range's largest magnitude (``halfcheetah-vel``), the direction (``halfcheetah-dir``), the scaled
log factors (``halfcheetah-params``, :class:`tasks.mujoco.common.ParamsFamily`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tasks.base import TaskBatch, require
from tasks.mujoco.common import MujocoConfig, MujocoFamily, ParamsConfig, ParamsFamily
from tasks.mujoco.simulator import require_mujoco
from tasks.registry import register_task


@dataclass
class HalfCheetahVelConfig(MujocoConfig):
    """HalfCheetah with a target forward velocity drawn per trial from U[velocity_low, high].

    The default range [0, 3] is what the code of PEARL, ProMP and VariBAD samples (their
    docstrings say [0, 2]); MAML samples [0, 2] (``velocity_high=2``). Before issue 18 the
    default was [0, 2].
    """

    episode_steps: int = 200
    """Steps per episode (200 as in MAML and PEARL)."""
    episodes: int = 2
    """Episodes per trial on one target velocity."""
    velocity_low: float = 0.0
    """Lowest target velocity (MAML: 0)."""
    velocity_high: float = 3.0
    """Highest target velocity (PEARL, ProMP, VariBAD code: 3; MAML: 2)."""
    ctrl_cost: float = 0.05
    """Weight of the squared action norm in the cost (MAML: 0.5 * 0.1)."""

    def __post_init__(self):
        super().__post_init__()
        require(
            self.velocity_high >= self.velocity_low,
            f"task.velocity_high must be >= task.velocity_low={self.velocity_low}, "
            f"got {self.velocity_high}",
        )
        require(self.ctrl_cost >= 0, f"task.ctrl_cost must be >= 0, got {self.ctrl_cost}")
        require_mujoco("halfcheetah-vel")


@dataclass
class HalfCheetahDirConfig(MujocoConfig):
    """HalfCheetah running forward or backward: direction +1 or -1, each with probability 1/2."""

    episode_steps: int = 200
    """Steps per episode (200 as in MAML, PEARL and VariBAD)."""
    episodes: int = 2
    """Episodes per trial on one direction."""
    ctrl_cost: float = 0.05
    """Weight of the squared action norm in the cost (MAML: 0.5 * 0.1)."""

    def __post_init__(self):
        super().__post_init__()
        require(self.ctrl_cost >= 0, f"task.ctrl_cost must be >= 0, got {self.ctrl_cost}")
        require_mujoco("halfcheetah-dir")


@dataclass
class HalfCheetahParamsConfig(ParamsConfig):
    """HalfCheetah-v5 with per-trial masses, damping and friction."""

    def __post_init__(self):
        super().__post_init__()
        require_mujoco("halfcheetah-params")


class _HalfCheetah(MujocoFamily):
    env_id = "HalfCheetah-v5"
    qvel_noise_normal = True
    reset_noise = 0.1

    @property
    def fixed_trial_steps(self) -> int:
        return self.config.episode_steps * self.config.episodes


@register_task
class HalfCheetahVel(_HalfCheetah):
    """HalfCheetah running at a per-trial target velocity (MAML / PEARL's cheetah-vel)."""

    name = "halfcheetah-vel"
    gym_id = "metarl/HalfCheetahVel-v0"
    Config = HalfCheetahVelConfig

    def sample(self, n: int, generator: torch.Generator) -> TaskBatch:
        low, high = self.config.velocity_low, self.config.velocity_high
        uniform = torch.rand(n, generator=generator, device=generator.device)
        return {"target_velocity": low + (high - low) * uniform}

    @property
    def task_dim(self) -> int:
        return 1

    def task_features(self, tasks: TaskBatch) -> torch.Tensor:
        config = self.config
        scale = max(abs(config.velocity_low), abs(config.velocity_high)) or 1.0
        return (tasks["target_velocity"] / scale).float()[:, None]

    def reference_scores(self, tasks: TaskBatch) -> dict[str, torch.Tensor]:
        """Monte-Carlo random reference; the oracle reference is the return's upper bound, 0."""
        random = self._random_trial_returns(tasks)
        return {"random": random, "oracle": torch.zeros_like(random)}

    def _reward(self, tasks, physics, velocity, action_cost):
        target = tasks["target_velocity"].to(torch.float64)
        reward = -(velocity - target).abs() - self.config.ctrl_cost * action_cost
        return reward, torch.zeros_like(reward, dtype=torch.bool)


@register_task
class HalfCheetahDir(_HalfCheetah):
    """HalfCheetah running in a per-trial direction (cheetah-dir of MAML, PEARL, VariBAD).

    Task: ``direction`` in {-1.0, +1.0}, each with probability 1/2. Reward per step:
    direction * forward velocity - ctrl_cost * |a|^2. The return has no upper bound, so the
    oracle reference is NaN (compare raw returns); the random reference is Monte Carlo.
    """

    name = "halfcheetah-dir"
    gym_id = "metarl/HalfCheetahDir-v0"
    Config = HalfCheetahDirConfig

    def sample(self, n: int, generator: torch.Generator) -> TaskBatch:
        coin = torch.randint(2, (n,), generator=generator, device=generator.device)
        return {"direction": 2.0 * coin.to(torch.float64) - 1.0}

    @property
    def task_dim(self) -> int:
        return 1

    def task_features(self, tasks: TaskBatch) -> torch.Tensor:
        return tasks["direction"].float()[:, None]

    def _reward(self, tasks, physics, velocity, action_cost):
        direction = tasks["direction"].to(torch.float64)
        reward = direction * velocity - self.config.ctrl_cost * action_cost
        return reward, torch.zeros_like(reward, dtype=torch.bool)


@register_task
class HalfCheetahParams(ParamsFamily, _HalfCheetah):
    """HalfCheetah-v5 (forward velocity - 0.1 |a|^2) with per-trial masses, damping, friction."""

    name = "halfcheetah-params"
    gym_id = "metarl/HalfCheetahParams-v0"
    Config = HalfCheetahParamsConfig

    def _reward(self, tasks, physics, velocity, action_cost):
        reward = velocity - 0.1 * action_cost
        return reward, torch.zeros_like(reward, dtype=torch.bool)
