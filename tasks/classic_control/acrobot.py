"""``acrobot-params``: gymnasium's Acrobot-v1 with link masses, link lengths and gravity per trial.

Three actions apply torque -1, 0, +1 on the second joint; -1 reward per step until the tip swings
above the bar. The oracle is a one-step lookahead that picks the torque whose next state has the
largest total mechanical energy (computed with the task's masses, lengths, inertia and gravity),
i.e. energy pumping.

Parameter ranges (``ranges``): 'suite' (default) draws every ``*_range`` field independently
(the moment of inertia stays at gymnasium's 1.0 unless ``link_moi_range`` is set); 'packer' and
'packer-extreme' are the ranges of the Acrobot variants in Packer et al. 2018's sunblaze_envs code
(``RandomNormalAcrobot`` / ``RandomExtremeAcrobot``): one mass, one length and one moment of
inertia per task, each shared by both links (tied), drawn from [0.75, 1.25] (R) or from
[0.5, 0.75] u [1.25, 1.5] (E, uniform over the union); gravity stays at 9.8. Unlike their code
(gymnasium's fixed centre of mass 0.5), the centre of mass sits at half the drawn length.
Success (their ``is_success``): the tip reaches the height within 90 steps of the episode
(``success_steps`` 1 on the terminating step, ``success_within`` 90).
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
    range_field,
)
from tasks.registry import register_task


@dataclass
class AcrobotParamsConfig(ClassicControlConfig):
    """Acrobot-v1 with link masses, link lengths and gravity drawn per trial."""

    link_mass_1_range: list[float] = range_field(0.5, 1.5)
    """Mass of link 1 [kg] (gymnasium: 1.0)."""
    link_mass_2_range: list[float] = range_field(0.5, 1.5)
    """Mass of link 2 [kg] (gymnasium: 1.0)."""
    link_length_1_range: list[float] = range_field(0.5, 1.5)
    """Length of link 1 [m] (gymnasium: 1.0); its centre of mass sits at half the length."""
    link_length_2_range: list[float] = range_field(0.5, 1.5)
    """Length of link 2 [m] (gymnasium: 1.0); its centre of mass sits at half the length."""
    gravity_range: list[float] = range_field(7.35, 12.25)
    """Gravity [m/s^2] (gymnasium: 9.8)."""
    link_moi_range: list[float] = range_field(1.0, 1.0)
    """Moment of inertia of each link, one value for both [kg m^2] (gymnasium: 1.0, fixed)."""
    damping: float = 0.0
    """Viscous friction at both joints (torque -damping * joint velocity); 0 is gymnasium."""
    book_or_nips: str = choice("book", ("book", "nips"))
    """The equations of motion: 'book' (gymnasium's default) or 'nips'."""
    ranges: str = choice("suite", ("suite", "packer", "packer-extreme"))
    """'suite': the ``*_range`` fields; 'packer' / 'packer-extreme': Packer et al. 2018's R / E
    ranges with tied links (module doc), which then fix every range."""

    RANGE_PRESETS: ClassVar[dict[str, dict[str, Intervals | str]]] = {
        preset: {
            "link_mass_1_range": intervals,
            "link_mass_2_range": "link_mass_1_range",
            "link_length_1_range": intervals,
            "link_length_2_range": "link_length_1_range",
            "gravity_range": ((9.8, 9.8),),
            "link_moi_range": intervals,
        }
        for preset, intervals in (
            ("packer", ((0.75, 1.25),)),
            ("packer-extreme", ((0.5, 0.75), (1.25, 1.5))),
        )
    }

    def __post_init__(self):
        super().__post_init__()
        require(self.damping >= 0, f"task.damping must be >= 0, got {self.damping}")


def wrap(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Gymnasium's wrap: shift x by whole periods (high - low) into [low, high]."""
    diff = high - low
    above = torch.ceil((x - high) / diff).clamp(min=0)
    below = torch.ceil((low - x) / diff).clamp(min=0)
    return x - above * diff + below * diff


@register_task
class AcrobotParams(ClassicControlFamily):
    """Gymnasium's Acrobot-v1 (RK4, dt 0.2, -1 per step) with constants drawn per trial.

    The centres of mass sit at half of each link's length; both links have the task's moment of
    inertia (gymnasium: 1). Termination is gymnasium's angle condition
    -cos(t1) - cos(t1 + t2) > 1.
    """

    name = "acrobot-params"
    gym_id = "metarl/AcrobotParams-v0"
    Config = AcrobotParamsConfig
    OBS_DIM = 6
    DT = 0.2
    MAX_VEL_1 = 4 * math.pi
    MAX_VEL_2 = 9 * math.pi
    success_steps = 1
    """Packer et al.'s success: the tip reaches the height (the terminating step) ..."""
    success_within = 90
    """... within this many steps of the episode."""

    @property
    def num_actions(self) -> int:
        return 3

    def initial_state(self, tasks: TaskBatch, generator: torch.Generator) -> EnvState:
        state = self.uniform_state(tasks, generator, [0.1] * 4)
        return {"s": state.float().to(self.dtype)}  # gymnasium draws its reset state in float32

    def observe(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        t1, t2, dt1, dt2 = state["s"].unbind(1)
        parts = [torch.cos(t1), torch.sin(t1), torch.cos(t2), torch.sin(t2), dt1, dt2]
        return torch.stack(parts, 1).float()

    def step(self, tasks, state, action, generator):
        torque = (action - 1).to(self.dtype)
        ns = self.rk4(tasks, state["s"], torque)
        t1 = wrap(ns[:, 0], -math.pi, math.pi)
        t2 = wrap(ns[:, 1], -math.pi, math.pi)
        dt1 = ns[:, 2].clamp(-self.MAX_VEL_1, self.MAX_VEL_1)
        dt2 = ns[:, 3].clamp(-self.MAX_VEL_2, self.MAX_VEL_2)
        terminated = -torch.cos(t1) - torch.cos(t2 + t1) > 1.0
        reward = torch.where(terminated, 0.0, -1.0)
        return {"s": torch.stack([t1, t2, dt1, dt2], 1)}, reward, terminated

    def rk4(self, tasks: TaskBatch, y0: torch.Tensor, torque: torch.Tensor) -> torch.Tensor:
        """One classic Runge-Kutta step of length DT (gymnasium's rk4 over [0, dt])."""
        dt = self.DT
        dt2 = dt / 2.0
        k1 = self.dsdt(tasks, y0, torque)
        k2 = self.dsdt(tasks, y0 + dt2 * k1, torque)
        k3 = self.dsdt(tasks, y0 + dt2 * k2, torque)
        k4 = self.dsdt(tasks, y0 + dt * k3, torque)
        return y0 + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)

    def dsdt(self, tasks: TaskBatch, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Gymnasium's _dsdt with per-task constants, plus optional joint damping."""
        m1, m2 = tasks["link_mass_1"], tasks["link_mass_2"]
        l1 = tasks["link_length_1"]
        lc1, lc2 = tasks["link_length_1"] / 2, tasks["link_length_2"] / 2
        I1 = I2 = tasks["link_moi"]  # noqa: N806 (gymnasium's names)
        g = tasks["gravity"]
        theta1, theta2, dtheta1, dtheta2 = s.unbind(1)
        a = a - self.config.damping * dtheta2
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * torch.cos(theta2)) + I1 + I2
        d2 = m2 * (lc2**2 + l1 * lc2 * torch.cos(theta2)) + I2
        phi2 = m2 * lc2 * g * torch.cos(theta1 + theta2 - math.pi / 2.0)
        phi1 = (
            -m2 * l1 * lc2 * dtheta2**2 * torch.sin(theta2)
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * torch.sin(theta2)
            + (m1 * lc1 + m2 * l1) * g * torch.cos(theta1 - math.pi / 2)
            + phi2
        )
        phi1 = phi1 + self.config.damping * dtheta1  # friction torque on joint 1
        if self.config.book_or_nips == "nips":
            ddtheta2 = (a + d2 / d1 * phi1 - phi2) / (m2 * lc2**2 + I2 - d2**2 / d1)
        else:
            ddtheta2 = (
                a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * torch.sin(theta2) - phi2
            ) / (m2 * lc2**2 + I2 - d2**2 / d1)
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return torch.stack([dtheta1, dtheta2, ddtheta1, ddtheta2], 1)

    def energy(self, tasks: TaskBatch, s: torch.Tensor) -> torch.Tensor:
        """Total mechanical energy of the double pendulum, zero height at the pivot, [n]."""
        m1, m2 = tasks["link_mass_1"], tasks["link_mass_2"]
        l1 = tasks["link_length_1"]
        lc1, lc2 = l1 / 2, tasks["link_length_2"] / 2
        theta1, theta2, dtheta1, dtheta2 = s.unbind(1)
        d11 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * torch.cos(theta2))
        moi = tasks["link_moi"]
        d11 = d11 + 2 * moi
        d12 = m2 * (lc2**2 + l1 * lc2 * torch.cos(theta2)) + moi
        d22 = m2 * lc2**2 + moi
        kinetic = 0.5 * (d11 * dtheta1**2 + 2 * d12 * dtheta1 * dtheta2 + d22 * dtheta2**2)
        height_1 = -lc1 * torch.cos(theta1)
        height_2 = -l1 * torch.cos(theta1) - lc2 * torch.cos(theta1 + theta2)
        return kinetic + tasks["gravity"] * (m1 * height_1 + m2 * height_2)

    def success_signal(self, tasks, state, terminated):
        """The step lifted the tip above the bar (it terminates the episode)."""
        return terminated

    def oracle_action(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        energies = []
        for torque in (-1.0, 0.0, 1.0):
            push = torch.full_like(state["s"][:, 0], torque)
            energies.append(self.energy(tasks, self.rk4(tasks, state["s"], push)))
        return torch.stack(energies, 1).argmax(1)
