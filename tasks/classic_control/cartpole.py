"""``cartpole-params``: gymnasium's CartPole-v1 with masses, length, gravity and force per trial.

Two actions push the cart left or right with ``force_mag``; +1 reward per step until the pole
falls past 12 degrees or the cart leaves [-2.4, 2.4]. The oracle is a linear state-feedback law
placing the four closed-loop poles of gymnasium's linearised cart-pole at -``oracle_pole`` (closed
form in the task's constants), acted on by its sign (bang-bang, the only actuation there is).

Parameter ranges (``ranges``): 'suite' (default) draws every ``*_range`` field; 'packer' and
'packer-extreme' are the R and E ranges of Packer et al. 2018, "Assessing generalization in deep
reinforcement learning" (their sunblaze_envs code): push force [5, 15], half pole length
[0.25, 0.75], pole mass [0.05, 0.5] (R), and force [1, 5] u [15, 20], length [0.05, 0.25] u
[0.75, 1.0], mass [0.01, 0.05] u [0.5, 1.0] (E, uniform over each union); cart mass (1.0) and
gravity (9.8) stay at gymnasium's values. Success (Packer et al.): an episode balances the pole
for at least 195 steps (``success_steps``; every step counts, so its streak is its length).
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
class CartPoleParamsConfig(ClassicControlConfig):
    """CartPole-v1 with masses, half pole length, gravity and push force drawn per trial."""

    masscart_range: list[float] = range_field(0.5, 1.5)
    """Cart mass [kg] (gymnasium: 1.0)."""
    masspole_range: list[float] = range_field(0.05, 0.15)
    """Pole mass [kg] (gymnasium: 0.1)."""
    length_range: list[float] = range_field(0.25, 0.75)
    """Half the pole's length [m] (gymnasium: 0.5)."""
    gravity_range: list[float] = range_field(7.35, 12.25)
    """Gravity [m/s^2] (gymnasium: 9.8)."""
    force_mag_range: list[float] = range_field(5.0, 15.0)
    """Magnitude of the push [N] (gymnasium: 10.0)."""
    oracle_pole: float = 3.0
    """The oracle places the closed-loop poles of the linearised system at -oracle_pole [1/s]."""
    ranges: str = choice("suite", ("suite", "packer", "packer-extreme"))
    """'suite': the ``*_range`` fields; 'packer' / 'packer-extreme': Packer et al. 2018's R / E
    ranges (module doc), which then fix every range."""

    RANGE_PRESETS: ClassVar[dict[str, dict[str, Intervals]]] = {
        "packer": {
            "masscart_range": ((1.0, 1.0),),
            "masspole_range": ((0.05, 0.5),),
            "length_range": ((0.25, 0.75),),
            "gravity_range": ((9.8, 9.8),),
            "force_mag_range": ((5.0, 15.0),),
        },
        "packer-extreme": {
            "masscart_range": ((1.0, 1.0),),
            "masspole_range": ((0.01, 0.05), (0.5, 1.0)),
            "length_range": ((0.05, 0.25), (0.75, 1.0)),
            "gravity_range": ((9.8, 9.8),),
            "force_mag_range": ((1.0, 5.0), (15.0, 20.0)),
        },
    }

    def __post_init__(self):
        super().__post_init__()
        require(self.oracle_pole > 0, f"task.oracle_pole must be > 0, got {self.oracle_pole}")


@register_task
class CartPoleParams(ClassicControlFamily):
    """Gymnasium's CartPole-v1 (Euler, tau 0.02, +1 per step) with constants drawn per trial."""

    name = "cartpole-params"
    gym_id = "metarl/CartPoleParams-v0"
    Config = CartPoleParamsConfig
    OBS_DIM = 4
    TAU = 0.02
    THETA_THRESHOLD = 12 * 2 * math.pi / 360
    X_THRESHOLD = 2.4
    success_steps = 195
    """An episode succeeds if the pole stays up this many steps (Packer et al. 2018)."""

    @property
    def num_actions(self) -> int:
        return 2

    def initial_state(self, tasks: TaskBatch, generator: torch.Generator) -> EnvState:
        return {"s": self.uniform_state(tasks, generator, [0.05] * 4)}

    def observe(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        return state["s"].float()

    def step(self, tasks, state, action, generator):
        x, x_dot, theta, theta_dot = state["s"].unbind(1)
        masspole, length = tasks["masspole"], tasks["length"]
        total_mass = masspole + tasks["masscart"]
        polemass_length = masspole * length
        force = torch.where(action == 1, tasks["force_mag"], -tasks["force_mag"])
        costheta = torch.cos(theta)
        sintheta = torch.sin(theta)
        temp = (force + polemass_length * torch.square(theta_dot) * sintheta) / total_mass
        thetaacc = (tasks["gravity"] * sintheta - costheta * temp) / (
            length * (4.0 / 3.0 - masspole * torch.square(costheta) / total_mass)
        )
        xacc = temp - polemass_length * thetaacc * costheta / total_mass
        tau = self.TAU
        x = x + tau * x_dot
        x_dot = x_dot + tau * xacc
        theta = theta + tau * theta_dot
        theta_dot = theta_dot + tau * thetaacc
        terminated = (
            (x < -self.X_THRESHOLD)
            | (x > self.X_THRESHOLD)
            | (theta < -self.THETA_THRESHOLD)
            | (theta > self.THETA_THRESHOLD)
        )
        reward = torch.ones_like(x, dtype=torch.float32)  # +1 on every step, the last included
        return {"s": torch.stack([x, x_dot, theta, theta_dot], 1)}, reward, terminated

    def success_signal(self, tasks, state, terminated):
        """True on every step, the last included: an episode's streak is its length."""
        return torch.ones_like(terminated)

    def feedback_gains(self, tasks: TaskBatch) -> torch.Tensor:
        """Gains K [n, 4] of F = -K s placing the linearised cart-pole's poles at -oracle_pole.

        Linearised at theta = 0: theta'' = a theta + b F and x'' = c theta + d F, with
        D = l (4/3 - m_p / M), a = g / D, b = -1 / (M D), c = -m_p l g / (M D) and
        d = (1 + m_p l / (M D)) / M. The closed-loop characteristic polynomial is
        s^4 + (b k4 + d k2) s^3 + (b k3 + d k1 - a) s^2 + e k2 s + e k1 with e = b c - a d;
        matching (s + w)^4 gives the gains in closed form.
        """
        masspole, length, gravity = tasks["masspole"], tasks["length"], tasks["gravity"]
        total_mass = masspole + tasks["masscart"]
        depth = length * (4.0 / 3.0 - masspole / total_mass)
        a = gravity / depth
        b = -1.0 / (total_mass * depth)
        c = -masspole * length * gravity / (total_mass * depth)
        d = (1.0 + masspole * length / (total_mass * depth)) / total_mass
        e = b * c - a * d
        w = self.config.oracle_pole
        k1 = w**4 / e
        k2 = 4 * w**3 / e
        k3 = (6 * w**2 + a - d * k1) / b
        k4 = (4 * w - d * k2) / b
        return torch.stack([k1, k2, k3, k4], 1)

    def oracle_action(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        force = -(self.feedback_gains(tasks) * state["s"]).sum(1)
        return (force > 0).long()
