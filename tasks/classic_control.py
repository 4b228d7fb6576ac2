"""Classic control with physical parameters drawn per trial: cartpole, pendulum and acrobot.

Each family steps gymnasium 1.x's equations (``CartPole-v1``, ``Pendulum-v1``, ``Acrobot-v1``)
line by line, vectorised over the batch, with the physical constants that gymnasium keeps fixed
(masses, lengths, gravity, ...) replaced by per-task tensors. Every trial draws each constant
uniformly from its configured range (``<name>_range: [low, high]``, defaults centred on
gymnasium's values) and plays ``episodes`` episodes on the same constants; an episode ends on
gymnasium's termination or after ``max_steps`` steps. ``tests/test_classic_control.py`` steps
gymnasium's own environments beside these families and checks the states agree to 1e-5.

Actions are discrete everywhere (the learned algorithms of this suite are discrete-action):

- ``cartpole-params``: 2 actions, push left / right with ``force_mag`` (as gymnasium);
- ``acrobot-params``: 3 actions, torque -1, 0, +1 on the second joint (as gymnasium);
- ``pendulum-params``: ``torque_levels`` actions, torques evenly spaced in
  [-max_torque, max_torque] (gymnasium's Pendulum is continuous; this is the one departure).

Observations are gymnasium's (float32): cartpole (x, x_dot, theta, theta_dot); pendulum
(cos theta, sin theta, theta_dot); acrobot (cos t1, sin t1, cos t2, sin t2, dt1, dt2). The state
is kept in ``dtype`` (float32 by default; float64 reproduces gymnasium's float64 states over long
trajectories).

Reference scores are Monte-Carlo estimates: for every task of the batch, ``reference_rollouts``
whole trials are played by the uniform random policy and by the oracle (all tasks and repetitions
in one batch, one tensor step per time step), from a fixed seed so the estimate is deterministic.
The oracles know the physical constants of their task:

- cartpole: a linear state-feedback law placing the four closed-loop poles of gymnasium's
  linearised cart-pole at -``oracle_pole`` (closed form in the task's constants), acted on by
  its sign (bang-bang, the only actuation there is);
- pendulum: energy shaping (torque along theta_dot to bring the energy to that of the upright
  rest state) and, near the top, a PD law cancelling gravity with the known m, l, g; the torque
  is rounded to the nearest level;
- acrobot: one-step lookahead that picks the torque whose next state has the largest total
  mechanical energy (computed with the task's masses, lengths and gravity), i.e. energy pumping.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from tasks.base import (
    EnvState,
    FamilyConfig,
    TaskBatch,
    TaskFamily,
    check_choices,
    choice,
    require,
)
from tasks.registry import register_task

DTYPES = {"float32": torch.float32, "float64": torch.float64}
REFERENCE_SEED = 20_240_601
"""Seed of the Monte-Carlo rollouts that estimate the reference scores."""


def _range(low: float, high: float) -> list[float]:
    return field(default_factory=lambda: [low, high])


def check_range(config: FamilyConfig, key: str, positive: bool = True) -> None:
    """Validate ``config.<key>`` as a [low, high] pair of numbers; raise a one-line ConfigError.

    Args:
        config: the family's config.
        key: the field name, e.g. ``length_range``.
        positive: require low > 0 (masses, lengths, gravity).
    """
    value = getattr(config, key)
    require(
        isinstance(value, list | tuple) and len(value) == 2,
        f"task.{key} must be a list of two numbers [low, high], got {value}",
    )
    require(
        all(isinstance(v, int | float) and not isinstance(v, bool) for v in value),
        f"task.{key} must be a list of two numbers [low, high], got {value}",
    )
    low, high = float(value[0]), float(value[1])
    require(low <= high, f"task.{key}: low {low} > high {high}")
    if positive:
        require(low > 0, f"task.{key} must be > 0, got low {low}")


def check_positive_int(config: FamilyConfig, key: str, low: int = 1) -> None:
    """Validate ``config.<key>`` as an integer >= ``low``."""
    value = getattr(config, key)
    require(
        isinstance(value, int) and not isinstance(value, bool) and value >= low,
        f"task.{key} must be an integer >= {low}, got {value}",
    )


@dataclass
class ClassicControlConfig(FamilyConfig):
    """Fields shared by the classic-control families."""

    episodes: int = 2
    """Episodes per trial (same physical constants, hidden state carried)."""
    max_steps: int = 200
    """Steps after which an episode is truncated."""
    dtype: str = choice("float32", DTYPES)
    """Precision of the physical state: float32 or float64 (observations are always float32)."""
    reference_rollouts: int = 4
    """Monte-Carlo trials per task when estimating the random and oracle reference scores."""

    def __post_init__(self):
        for key in ("episodes", "max_steps", "reference_rollouts"):
            check_positive_int(self, key)
        check_choices(self)
        for key in self.ranged_keys():
            check_range(self, key)

    def ranged_keys(self) -> list[str]:
        """The ``*_range`` fields, in declaration order."""
        return [key for key in self.__dataclass_fields__ if key.endswith("_range")]


class ClassicControlFamily(TaskFamily):
    """Shared sampling, bookkeeping and Monte-Carlo references of the classic-control families.

    A subclass declares its ranged constants as ``<name>_range`` config fields (each becomes a
    task tensor ``<name>`` of shape [n]), keeps its physical state in ``state["s"]`` [n, k] and
    implements ``observe``, ``step``, ``oracle_action`` and ``initial_state``.
    """

    OBS_DIM: ClassVar[int]

    @property
    def dtype(self) -> torch.dtype:
        """Precision of the physical state and the task constants."""
        return DTYPES[self.config.dtype]

    @property
    def obs_dim(self) -> int:
        return self.OBS_DIM

    @property
    def max_episode_steps(self) -> int:
        return self.config.max_steps

    @property
    def episodes_per_trial(self) -> int:
        return self.config.episodes

    def sample(self, n: int, generator: torch.Generator) -> TaskBatch:
        tasks = {}
        for key in self.config.ranged_keys():
            low, high = (float(v) for v in getattr(self.config, key))
            draw = torch.rand(n, generator=generator, device=generator.device, dtype=self.dtype)
            tasks[key.removesuffix("_range")] = low + (high - low) * draw
        return tasks

    def uniform_state(
        self, tasks: TaskBatch, generator: torch.Generator, high: list[float]
    ) -> torch.Tensor:
        """A state drawn uniformly from [-high, high] per component, [n, len(high)]."""
        first = next(iter(tasks.values()))
        bound = torch.tensor(high, dtype=self.dtype, device=first.device)
        draw = torch.rand(
            first.shape[0], len(high), generator=generator, device=first.device, dtype=self.dtype
        )
        return (2 * draw - 1) * bound

    def reference_scores(self, tasks: TaskBatch) -> dict[str, torch.Tensor]:
        reps = self.config.reference_rollouts
        n = next(iter(tasks.values())).shape[0]
        repeated = {key: value.repeat(reps) for key, value in tasks.items()}
        device = next(iter(tasks.values())).device
        generator = torch.Generator(device=device).manual_seed(REFERENCE_SEED)

        def uniform(batch: TaskBatch, state: EnvState) -> torch.Tensor:
            size = (state["s"].shape[0],)
            return torch.randint(self.num_actions, size, generator=generator, device=device)

        scores = {}
        for name, policy in (("random", uniform), ("oracle", self.oracle_action)):
            totals = self.rollout_totals(repeated, policy, generator)
            scores[name] = totals.view(reps, n).mean(0).float()
        return scores

    def rollout_totals(
        self,
        tasks: TaskBatch,
        policy: Callable[[TaskBatch, EnvState], torch.Tensor],
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Total reward of one whole trial per task under ``policy`` (state-feedback), [n].

        Args:
            tasks: the task batch.
            policy: maps (tasks, state) to actions, long [n].
            generator: drives initial states (and the policy, if it draws).
        """
        totals = torch.zeros(next(iter(tasks.values())).shape[0], dtype=self.dtype)
        totals = totals.to(next(iter(tasks.values())).device)
        for _ in range(self.config.episodes):
            state = self.initial_state(tasks, generator)
            alive = torch.ones_like(totals, dtype=torch.bool)
            for _ in range(self.config.max_steps):
                action = policy(tasks, state)
                state, reward, terminated = self.step(tasks, state, action, generator)
                totals += torch.where(alive, reward.to(self.dtype), 0.0)
                alive = alive & ~terminated
                if not bool(alive.any()):
                    break
        return totals


# Cart-pole -------------------------------------------------------------------------------------


@dataclass
class CartPoleParamsConfig(ClassicControlConfig):
    """CartPole-v1 with masses, half pole length, gravity and push force drawn per trial."""

    masscart_range: list[float] = _range(0.5, 1.5)
    """Cart mass [kg] (gymnasium: 1.0)."""
    masspole_range: list[float] = _range(0.05, 0.15)
    """Pole mass [kg] (gymnasium: 0.1)."""
    length_range: list[float] = _range(0.25, 0.75)
    """Half the pole's length [m] (gymnasium: 0.5)."""
    gravity_range: list[float] = _range(7.35, 12.25)
    """Gravity [m/s^2] (gymnasium: 9.8)."""
    force_mag_range: list[float] = _range(5.0, 15.0)
    """Magnitude of the push [N] (gymnasium: 10.0)."""
    oracle_pole: float = 3.0
    """The oracle places the closed-loop poles of the linearised system at -oracle_pole [1/s]."""

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


# Pendulum --------------------------------------------------------------------------------------


@dataclass
class PendulumParamsConfig(ClassicControlConfig):
    """Pendulum-v1 with mass, length and gravity drawn per trial, and discrete torques."""

    m_range: list[float] = _range(0.5, 1.5)
    """Mass [kg] (gymnasium: 1.0)."""
    l_range: list[float] = _range(0.6, 1.4)
    """Length [m] (gymnasium: 1.0)."""
    g_range: list[float] = _range(8.0, 12.0)
    """Gravity [m/s^2] (gymnasium: 10.0)."""
    max_torque: float = 2.0
    """Largest torque magnitude (gymnasium: 2.0)."""
    torque_levels: int = 5
    """Number of discrete actions: torques evenly spaced in [-max_torque, max_torque]."""

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


# Acrobot ---------------------------------------------------------------------------------------


@dataclass
class AcrobotParamsConfig(ClassicControlConfig):
    """Acrobot-v1 with link masses, link lengths and gravity drawn per trial."""

    link_mass_1_range: list[float] = _range(0.5, 1.5)
    """Mass of link 1 [kg] (gymnasium: 1.0)."""
    link_mass_2_range: list[float] = _range(0.5, 1.5)
    """Mass of link 2 [kg] (gymnasium: 1.0)."""
    link_length_1_range: list[float] = _range(0.5, 1.5)
    """Length of link 1 [m] (gymnasium: 1.0); its centre of mass sits at half the length."""
    link_length_2_range: list[float] = _range(0.5, 1.5)
    """Length of link 2 [m] (gymnasium: 1.0); its centre of mass sits at half the length."""
    gravity_range: list[float] = _range(7.35, 12.25)
    """Gravity [m/s^2] (gymnasium: 9.8)."""
    damping: float = 0.0
    """Viscous friction at both joints (torque -damping * joint velocity); 0 is gymnasium."""
    book_or_nips: str = choice("book", ("book", "nips"))
    """The equations of motion: 'book' (gymnasium's default) or 'nips'."""

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

    The centres of mass sit at half of each link's length and both moments of inertia are 1, as in
    gymnasium. Termination is gymnasium's angle condition -cos(t1) - cos(t1 + t2) > 1.
    """

    name = "acrobot-params"
    gym_id = "metarl/AcrobotParams-v0"
    Config = AcrobotParamsConfig
    OBS_DIM = 6
    DT = 0.2
    LINK_MOI = 1.0
    MAX_VEL_1 = 4 * math.pi
    MAX_VEL_2 = 9 * math.pi

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
        I1 = I2 = self.LINK_MOI  # noqa: N806 (gymnasium's names)
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
        d11 = d11 + 2 * self.LINK_MOI
        d12 = m2 * (lc2**2 + l1 * lc2 * torch.cos(theta2)) + self.LINK_MOI
        d22 = m2 * lc2**2 + self.LINK_MOI
        kinetic = 0.5 * (d11 * dtheta1**2 + 2 * d12 * dtheta1 * dtheta2 + d22 * dtheta2**2)
        height_1 = -lc1 * torch.cos(theta1)
        height_2 = -l1 * torch.cos(theta1) - lc2 * torch.cos(theta1 + theta2)
        return kinetic + tasks["gravity"] * (m1 * height_1 + m2 * height_2)

    def oracle_action(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        energies = []
        for torque in (-1.0, 0.0, 1.0):
            push = torch.full_like(state["s"][:, 0], torque)
            energies.append(self.energy(tasks, self.rk4(tasks, state["s"], push)))
        return torch.stack(energies, 1).argmax(1)
