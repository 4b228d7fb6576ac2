"""``pendulum-params``: gymnasium's Pendulum-v1 with mass, length and gravity per trial.

Actions are ``torque_levels`` discrete torques evenly spaced in [-max_torque, max_torque]. The
oracle does energy shaping (torque along theta_dot to bring the energy to that of the upright rest
state) and, near the top, a PD law cancelling gravity with the known m, l, g; the torque is
rounded to the nearest level.

Parameter ranges (``ranges``): 'suite' (default) draws every ``*_range`` field; 'packer' and
'packer-extreme' are the R and E ranges of Packer et al. 2018, "Assessing generalization in deep
reinforcement learning" (their sunblaze_envs code): length and mass [0.75, 1.25] (R) and
[0.5, 0.75] u [1.25, 1.5] (E, uniform over the union); gravity stays at gymnasium's 10.0.
Success: not a return threshold. Packer et al.'s code counts an episode (200 steps) a success if
the pendulum ends it with at least 100 consecutive steps within pi/3 of upright
(``success_steps`` and :meth:`PendulumParams.success_signal`, from the angle after each step);
this is read from their environment code, the paper's text was not checked here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from tasks.base import EnvState, TaskBatch, choice, require
from tasks.classic_control.common import (
    ClassicControlConfig,
    ClassicControlFamily,
    Intervals,
    check_positive_int,
    range_field,
)
from tasks.registry import register_task


@dataclass
class PendulumParamsConfig(ClassicControlConfig):
    """Pendulum-v1 with mass, length and gravity drawn per trial, and discrete torques."""

    m_range: list[float] = range_field(0.5, 1.5)
    """Mass [kg] (gymnasium: 1.0)."""
    l_range: list[float] = range_field(0.6, 1.4)
    """Length [m] (gymnasium: 1.0)."""
    g_range: list[float] = range_field(8.0, 12.0)
    """Gravity [m/s^2] (gymnasium: 10.0)."""
    max_torque: float = 2.0
    """Largest torque magnitude (gymnasium: 2.0)."""
    torque_levels: int = 5
    """Number of discrete actions: torques evenly spaced in [-max_torque, max_torque]."""
    ranges: str = choice("suite", ("suite", "packer", "packer-extreme"))
    """'suite': the ``*_range`` fields; 'packer' / 'packer-extreme': Packer et al. 2018's R / E
    ranges (module doc), which then fix every range."""

    RANGE_PRESETS: ClassVar[dict[str, dict[str, Intervals]]] = {
        "packer": {
            "m_range": ((0.75, 1.25),),
            "l_range": ((0.75, 1.25),),
            "g_range": ((10.0, 10.0),),
        },
        "packer-extreme": {
            "m_range": ((0.5, 0.75), (1.25, 1.5)),
            "l_range": ((0.5, 0.75), (1.25, 1.5)),
            "g_range": ((10.0, 10.0),),
        },
    }

    def __post_init__(self):
        super().__post_init__()
        require(self.max_torque > 0, f"task.max_torque must be > 0, got {self.max_torque}")
        check_positive_int(self, "torque_levels", low=2)


def angle_normalize(x: torch.Tensor) -> torch.Tensor:
    """Gymnasium's angle_normalize: the angle wrapped to [-pi, pi)."""
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


@register_task
class PendulumParams(ClassicControlFamily):
    """Gymnasium's Pendulum-v1 (dt 0.05, max speed 8) with m, l, g drawn per trial."""

    name = "pendulum-params"
    gym_id = "metarl/PendulumParams-v0"
    Config = PendulumParamsConfig
    OBS_DIM = 3
    DT = 0.05
    MAX_SPEED = 8.0
    UPRIGHT_ANGLE = math.pi / 3
    """Packer et al.'s success: within this angle of upright ..."""
    success_steps = 100
    """... for at least this many consecutive steps at the end of the episode."""

    @property
    def num_actions(self) -> int:
        return self.config.torque_levels

    @property
    def fixed_trial_steps(self) -> int:
        return self.config.episodes * self.config.max_steps

    def torques(self, device: torch.device | str) -> torch.Tensor:
        """The torque of every action, [torque_levels]."""
        top, levels = self.config.max_torque, self.config.torque_levels
        return torch.linspace(-top, top, levels, dtype=self.dtype, device=device)

    def initial_state(self, tasks: TaskBatch, generator: torch.Generator) -> EnvState:
        return {"s": self.uniform_state(tasks, generator, [math.pi, 1.0])}

    def observe(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        th, thdot = state["s"].unbind(1)
        return torch.stack([torch.cos(th), torch.sin(th), thdot], 1).float()

    def step(self, tasks, state, action, generator):
        th, thdot = state["s"].unbind(1)
        g, m, l = tasks["g"], tasks["m"], tasks["l"]  # noqa: E741 (gymnasium's names)
        dt = self.DT
        top = self.config.max_torque
        u = torch.clamp(self.torques(th.device)[action], -top, top)
        costs = angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * (u**2)
        newthdot = thdot + (3 * g / (2 * l) * torch.sin(th) + 3.0 / (m * l**2) * u) * dt
        newthdot = torch.clamp(newthdot, -self.MAX_SPEED, self.MAX_SPEED)
        newth = th + newthdot * dt
        terminated = torch.zeros_like(th, dtype=torch.bool)
        return {"s": torch.stack([newth, newthdot], 1)}, (-costs).float(), terminated

    def success_signal(self, tasks, state, terminated):
        """The angle the step reached is within pi/3 of upright (0)."""
        return angle_normalize(state["s"][:, 0]).abs() <= self.UPRIGHT_ANGLE

    def oracle_action(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        th, thdot = state["s"].unbind(1)
        theta = angle_normalize(th)
        gravity_gain = 3 * tasks["g"] / (2 * tasks["l"])  # theta'' = a sin(theta) + b u
        torque_gain = 3.0 / (tasks["m"] * tasks["l"] ** 2)
        top = self.config.max_torque
        # Energy shaping: E = thdot^2 / 2 + a (cos theta - 1) is 0 at the upright rest state.
        energy = 0.5 * thdot**2 + gravity_gain * (torch.cos(theta) - 1)
        pump = top * torch.sign(-energy * thdot)
        pump = torch.where(thdot == 0, torch.full_like(pump, top), pump)
        # Near the top: cancel gravity and add a PD law (natural frequency 4 rad/s, damping 1).
        pd = -(gravity_gain * torch.sin(theta) + 16.0 * theta + 8.0 * thdot) / torque_gain
        # ... used only where the available torque can hold the pendulum against gravity.
        holdable = gravity_gain * torch.sin(theta).abs() < 0.7 * torque_gain * top
        near_top = (torch.cos(theta) > math.cos(0.6)) & holdable
        torque = torch.where(near_top, pd, pump).clamp(-top, top)
        spacing = 2 * top / (self.config.torque_levels - 1)
        return torch.round((torque + top) / spacing).long()
