"""``hopper-params``: gymnasium's Hopper-v5 with masses, damping and friction scaled per trial."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tasks.mujoco.common import ParamsConfig, ParamsFamily
from tasks.mujoco.simulator import require_mujoco
from tasks.registry import register_task


@dataclass
class HopperParamsConfig(ParamsConfig):
    """Hopper-v5 with per-trial masses, damping and friction."""

    def __post_init__(self):
        super().__post_init__()
        require_mujoco("hopper-params")


@register_task
class HopperParams(ParamsFamily):
    """Hopper-v5 with per-trial masses, damping, friction; an episode ends when it falls."""

    name = "hopper-params"
    gym_id = "metarl/HopperParams-v0"
    Config = HopperParamsConfig
    reset_noise = 5e-3

    env_id = "Hopper-v5"

    def _observed_qvel(self, qvel: torch.Tensor) -> torch.Tensor:
        return qvel.clamp(-10.0, 10.0)

    def _reward(self, tasks, physics, velocity, action_cost):
        # gymnasium Hopper-v5 defaults: healthy z > 0.7, |angle| < 0.2, |state[2:]| < 100.
        z, angle = physics[:, 2], physics[:, 3]
        state = physics[:, 3:]  # state_vector()[2:]: qpos[2:] and qvel
        healthy = (z > 0.7) & (angle.abs() < 0.2) & (state.abs() < 100.0).all(1)
        reward = healthy.to(torch.float64) + velocity - 1e-3 * action_cost
        return reward, ~healthy
