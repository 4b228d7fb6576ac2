"""MuJoCo locomotion families with continuous actions (optional extra: ``metarl-bench[mujoco]``).

- ``halfcheetah-vel``: HalfCheetah must run at a target velocity drawn per trial (MAML, PEARL):
  reward = -|forward velocity - target| - ctrl_cost * |a|^2.
- ``halfcheetah-params`` and ``hopper-params``: gymnasium's HalfCheetah-v5 and Hopper-v5 rewards,
  with every body's mass (and inertia), every joint's damping and every geom's friction scaled
  per trial by factors drawn log-uniformly from ``[1/s, s]`` (as rand_param_envs does for PEARL).

Design: a functional family over a numpy simulator
---------------------------------------------------
The TaskFamily interface is functional: the trial engine passes tasks and state in and gets the
next state out, and it freely selects between states per slot (``where``) at episode and trial
ends. So the simulator holds no episode state at all. The EnvState is MuJoCo's full physics state
vector per slot (``mjSTATE_FULLPHYSICS``: time, qpos, qvel; float64 [n, nstate]); ``initial_state``
draws gymnasium's reset noise with the task stream's torch generator, and ``step`` rolls every
slot forward ``frame_skip`` physics steps from the state it is given. With the same state and
action this reproduces gymnasium's own ``env.step`` exactly (tests/test_mujoco.py checks it).

The simulator (:class:`Simulator`, cached on the family, rebuilt after unpickling, e.g. in an
LSTM-A3C worker) is then a pure compute kernel: the nominal ``MjModel`` taken from gymnasium's
environment, one ``MjModel`` copy per slot for the ``-params`` families, and one ``MjData`` as
scratch. Each slot's model carries its task's parameters; they are written from the nominal values
whenever the task in a slot differs from the one last applied there, which happens at the first
step of each trial (vectorised comparison; the loop runs over the slots whose trial just started).

Stepping uses MuJoCo's own batching, ``mujoco.rollout.rollout`` (the per-slot models, their states
and controls in, the states after ``frame_skip`` steps out), one call for the whole batch with no
Python loop over environments. gymnasium's ``SyncVectorEnv`` would loop over sub-environments in
Python, auto-reset them on its own schedule and keep their state inside, which the engine's
functional per-slot resets cannot drive. The solver's warm start is not carried between steps (the
state vector does not hold it), which changes results only at the solver's tolerance.

References: ``random`` is a Monte-Carlo estimate, one trial of the uniform random policy on every
task (an unbiased estimate per task; it costs one extra trial per evaluated task). No optimal
policy is known for these tasks, so there is no oracle policy: the ``oracle`` strategy refuses
these families (``has_oracle = False``), and ``oracle_action`` returns the zero action only so the
batched contract holds. The ``oracle`` reference is

- ``halfcheetah-vel``: 0, the exact upper bound of the return (every reward is -|error| - cost,
  at most 0): the ideal of tracking the target from the first step at no control cost, which no
  policy reaches. The normalised score is then the fraction of the random policy's loss removed.
- ``-params``: NaN (no bound exists: the reward grows with speed), and with it the normalised
  score and the regret; compare raw returns. Tables show NaN for these entries.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from tasks.base import ConfigError, EnvState, FamilyConfig, TaskBatch, TaskFamily, require
from tasks.registry import register_task

INSTALL_HINT = "pip install 'metarl-bench[mujoco]'"
RANDOM_REFERENCE_SEED = 12345
"""Seed of the Monte-Carlo random-policy reference (the same for every evaluation)."""


def require_mujoco(task: str) -> None:
    """Raise a one-line :class:`ConfigError` with the install command when MuJoCo is missing.

    Args:
        task: the requested family, named in the message.
    """
    from gymnasium.error import DependencyNotInstalled

    try:
        import gymnasium.envs.mujoco  # noqa: F401
        import mujoco  # noqa: F401
        import mujoco.rollout  # noqa: F401
    except (ImportError, DependencyNotInstalled):
        raise ConfigError(
            f"task '{task}' needs MuJoCo, which is not installed; install it with: {INSTALL_HINT}"
        ) from None


# The simulator --------------------------------------------------------------------------------
def without_mujoco_warnings(mujoco: Any, build: Any) -> Any:
    """Run ``build`` with MuJoCo's warnings dropped instead of printed and written to a log file.

    gymnasium's XML files use the deprecated ``settotalmass`` attribute; without a handler MuJoCo
    prints a warning and writes ``MUJOCO_LOG.TXT`` into the working directory on every compile.
    """
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(lambda message: None)
    try:
        return build()
    finally:
        mujoco.set_mju_user_warning(previous)


class Simulator:
    """Stateless batched MuJoCo stepping for one gymnasium environment id.

    Args:
        env_id: a gymnasium MuJoCo id such as ``HalfCheetah-v5`` (its model, frame skip and
            initial pose are used; the environment itself is closed again).
    """

    def __init__(self, env_id: str):
        import gymnasium as gym
        import mujoco

        env = without_mujoco_warnings(mujoco, lambda: gym.make(env_id).unwrapped)
        self.model = env.model
        self.frame_skip = int(env.frame_skip)
        self.dt = float(env.dt)
        self.init_qpos = torch.as_tensor(env.init_qpos.copy(), dtype=torch.float64)
        self.init_qvel = torch.as_tensor(env.init_qvel.copy(), dtype=torch.float64)
        env.close()
        self.spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        self.state_size = int(mujoco.mj_stateSize(self.model, self.spec))
        self.data = mujoco.MjData(self.model)
        self.nominal = {
            "mass": self.model.body_mass.copy(),
            "inertia": self.model.body_inertia.copy(),
            "damping": self.model.dof_damping.copy(),
            "friction": self.model.geom_friction.copy(),
        }
        self.slot_models: list[Any] = []
        self.applied = np.zeros((0, sum(self.parameter_sizes.values())))
        """The factors last written into each slot's model (NaN: none yet)."""

    @property
    def parameter_sizes(self) -> dict[str, int]:
        """Factors per task: one per body (mass), per dof (damping), per geom (friction)."""
        model = self.model
        return {"mass": model.nbody, "damping": model.nv, "friction": model.ngeom}

    def advance(self, physics: np.ndarray, ctrl: np.ndarray, models: Any) -> np.ndarray:
        """The physics states after ``frame_skip`` steps under constant controls.

        Args:
            physics: float64 [n, state_size], full physics states.
            ctrl: float64 [n, nu], already inside the control range.
            models: one MjModel for every slot, or a list of n.
        """
        from mujoco import rollout

        control = np.repeat(ctrl[:, None, :], self.frame_skip, axis=1)
        states, _ = rollout.rollout(models, self.data, physics, control)
        return states[:, -1]

    def models_for(self, scales: np.ndarray) -> list[Any]:
        """Per-slot models carrying ``scales`` (float [n, nbody + nv + ngeom]).

        Only slots whose factors differ from the ones last applied there are rewritten: at the
        first step of a trial, or when another engine with other tasks shares this family.
        """
        n = scales.shape[0]
        if len(self.slot_models) < n:
            missing = n - len(self.slot_models)
            self.slot_models += [copy.copy(self.model) for _ in range(missing)]
            self.applied = np.concatenate(
                [self.applied, np.full((missing, scales.shape[1]), np.nan)]
            )
        changed = np.flatnonzero((self.applied[:n] != scales).any(1))
        for slot in changed:
            self._apply(self.slot_models[slot], scales[slot])
            self.applied[slot] = scales[slot]
        return self.slot_models[:n]

    def _apply(self, model: Any, factors: np.ndarray) -> None:
        import mujoco

        sizes = self.parameter_sizes
        mass, damping, friction = np.split(factors, np.cumsum(list(sizes.values()))[:-1])
        model.body_mass[:] = self.nominal["mass"] * mass
        model.body_inertia[:] = self.nominal["inertia"] * mass[:, None]  # density scaled
        model.dof_damping[:] = self.nominal["damping"] * damping
        model.geom_friction[:] = self.nominal["friction"] * friction[:, None]
        mujoco.mj_setConst(model, self.data)


# Configs ------------------------------------------------------------------------------------------
def _check_trial(config: Any) -> None:
    require(
        isinstance(config.episode_steps, int) and config.episode_steps >= 1,
        f"task.episode_steps must be >= 1, got {config.episode_steps}",
    )
    require(
        isinstance(config.episodes, int) and config.episodes >= 1,
        f"task.episodes must be >= 1, got {config.episodes}",
    )


@dataclass
class HalfCheetahVelConfig(FamilyConfig):
    """HalfCheetah with a target forward velocity drawn per trial from U[velocity_low, high]."""

    episode_steps: int = 200
    """Steps per episode (200 as in MAML and PEARL)."""
    episodes: int = 2
    """Episodes per trial on one target velocity."""
    velocity_low: float = 0.0
    """Lowest target velocity (MAML: 0)."""
    velocity_high: float = 2.0
    """Highest target velocity (MAML: 2; PEARL uses 3)."""
    ctrl_cost: float = 0.05
    """Weight of the squared action norm in the cost (MAML: 0.5 * 0.1)."""

    def __post_init__(self):
        _check_trial(self)
        require(
            self.velocity_high >= self.velocity_low,
            f"task.velocity_high must be >= task.velocity_low={self.velocity_low}, "
            f"got {self.velocity_high}",
        )
        require(self.ctrl_cost >= 0, f"task.ctrl_cost must be >= 0, got {self.ctrl_cost}")
        require_mujoco("halfcheetah-vel")


@dataclass
class ParamsConfig(FamilyConfig):
    """Dynamics scaled per trial: each factor log-uniform in [1/s, s] (s = 1 keeps the nominal)."""

    episode_steps: int = 200
    """Steps per episode (at most; the hopper's episode also ends when it falls)."""
    episodes: int = 2
    """Episodes per trial on one set of dynamics."""
    mass_scale: float = 2.0
    """s for the mass (and inertia) factor of every body."""
    damping_scale: float = 2.0
    """s for the damping factor of every joint dof."""
    friction_scale: float = 2.0
    """s for the friction factor of every geom."""

    def __post_init__(self):
        _check_trial(self)
        for key in ("mass_scale", "damping_scale", "friction_scale"):
            value = getattr(self, key)
            require(value >= 1.0, f"task.{key} must be >= 1 (factors in [1/s, s]), got {value}")


@dataclass
class HalfCheetahParamsConfig(ParamsConfig):
    """HalfCheetah-v5 with per-trial masses, damping and friction."""

    def __post_init__(self):
        super().__post_init__()
        require_mujoco("halfcheetah-params")


@dataclass
class HopperParamsConfig(ParamsConfig):
    """Hopper-v5 with per-trial masses, damping and friction."""

    def __post_init__(self):
        super().__post_init__()
        require_mujoco("hopper-params")


# Families -----------------------------------------------------------------------------------------
class MujocoFamily(TaskFamily):
    """Shared state handling, stepping and references of the MuJoCo families."""

    env_id: ClassVar[str]
    has_oracle: ClassVar[bool] = False
    qvel_noise_normal: ClassVar[bool] = False
    """gymnasium's reset noise on qvel: normal (HalfCheetah) or uniform (Hopper)."""
    reset_noise: ClassVar[float]

    def __init__(self, config: FamilyConfig):
        super().__init__(config)
        self._sim: Simulator | None = None
        sim = self.simulator
        model = sim.model
        self._dims = (model.nq, model.nv, model.nu)
        self._bounds = tuple(float(b) for b in model.actuator_ctrlrange[0])

    @property
    def simulator(self) -> Simulator:
        """The batched MuJoCo kernel (built on first use, also after unpickling)."""
        if self._sim is None:
            require_mujoco(self.name)
            self._sim = Simulator(self.env_id)
        return self._sim

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_sim": None}  # MjModel copies are rebuilt where unpickled

    @property
    def obs_dim(self) -> int:
        nq, nv, _ = self._dims
        return nq - 1 + nv

    @property
    def num_actions(self) -> int:
        return 0

    @property
    def action_dim(self) -> int:
        return self._dims[2]

    @property
    def action_bounds(self) -> tuple[float, float]:
        return self._bounds

    @property
    def max_episode_steps(self) -> int:
        return self.config.episode_steps

    @property
    def episodes_per_trial(self) -> int:
        return self.config.episodes

    def initial_state(self, tasks: TaskBatch, generator: torch.Generator) -> EnvState:
        sim, device = self.simulator, generator.device
        n = next(iter(tasks.values())).shape[0]
        nq, nv, _ = self._dims
        noise = self.reset_noise
        uniform = torch.rand(n, nq, generator=generator, device=device, dtype=torch.float64)
        qpos = sim.init_qpos.to(device) + noise * (2.0 * uniform - 1.0)
        if self.qvel_noise_normal:
            draw = torch.randn(n, nv, generator=generator, device=device, dtype=torch.float64)
        else:
            draw = 2.0 * torch.rand(n, nv, generator=generator, device=device, dtype=torch.float64)
            draw = draw - 1.0
        qvel = sim.init_qvel.to(device) + noise * draw
        time = torch.zeros(n, 1, device=device, dtype=torch.float64)
        return {"physics": torch.cat([time, qpos, qvel], 1)}

    def observe(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        nq, _, _ = self._dims
        physics = state["physics"]
        return torch.cat(
            [physics[:, 2 : 1 + nq], self._observed_qvel(physics[:, 1 + nq :])], 1
        ).float()

    def _observed_qvel(self, qvel: torch.Tensor) -> torch.Tensor:
        return qvel

    def step(self, tasks, state, action, generator):
        physics = state["physics"]
        action = action.clamp(*self._bounds).to(torch.float64)
        ctrl = action.detach().cpu().numpy()
        after = self.simulator.advance(physics.cpu().numpy(), ctrl, self._models(tasks))
        after = torch.from_numpy(after).to(physics.device)
        velocity = (after[:, 1] - physics[:, 1]) / self.simulator.dt
        reward, terminated = self._reward(tasks, after, velocity, action.pow(2).sum(1))
        return {"physics": after}, reward.float(), terminated

    def _models(self, tasks: TaskBatch) -> Any:
        return self.simulator.model

    def _reward(self, tasks, physics, velocity, action_cost):
        raise NotImplementedError

    def reference_scores(self, tasks: TaskBatch) -> dict[str, torch.Tensor]:
        random = self._random_trial_returns(tasks)
        return {"random": random, "oracle": torch.full_like(random, math.nan)}

    def _random_trial_returns(self, tasks: TaskBatch) -> torch.Tensor:
        """One trial of the uniform random policy on every task (Monte Carlo, fixed seed)."""
        device = next(iter(tasks.values())).device
        generator = torch.Generator(device=device).manual_seed(RANDOM_REFERENCE_SEED)
        n, low, high = next(iter(tasks.values())).shape[0], *self._bounds
        totals = torch.zeros(n, device=device)
        for _ in range(self.episodes_per_trial):
            state = self.initial_state(tasks, generator)
            alive = torch.ones(n, dtype=torch.bool, device=device)
            for _ in range(self.max_episode_steps):
                uniform = torch.rand(n, self.action_dim, generator=generator, device=device)
                state, reward, terminated = self.step(
                    tasks, state, low + (high - low) * uniform, generator
                )
                totals += reward * alive
                alive = alive & ~terminated
        return totals

    def oracle_action(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        """No oracle exists: the zero action, only to keep the contract (see the module doc)."""
        return torch.zeros(
            state["physics"].shape[0], self.action_dim, device=state["physics"].device
        )


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

    def reference_scores(self, tasks: TaskBatch) -> dict[str, torch.Tensor]:
        """Monte-Carlo random reference; the oracle reference is the return's upper bound, 0."""
        random = self._random_trial_returns(tasks)
        return {"random": random, "oracle": torch.zeros_like(random)}

    def _reward(self, tasks, physics, velocity, action_cost):
        target = tasks["target_velocity"].to(torch.float64)
        reward = -(velocity - target).abs() - self.config.ctrl_cost * action_cost
        return reward, torch.zeros_like(reward, dtype=torch.bool)


class _ParamsFamily(MujocoFamily):
    """Per-trial dynamics: one log-uniform factor per body mass, dof damping and geom friction."""

    def sample(self, n: int, generator: torch.Generator) -> TaskBatch:
        device, sizes = generator.device, self.simulator.parameter_sizes
        tasks = {}
        for key, size in sizes.items():
            log_s = math.log(getattr(self.config, f"{key}_scale"))
            uniform = torch.rand(n, size, generator=generator, device=device, dtype=torch.float64)
            tasks[f"{key}_factor"] = torch.exp(log_s * (2.0 * uniform - 1.0))
        return tasks

    def _models(self, tasks: TaskBatch) -> Any:
        factors = torch.cat([tasks[f"{key}_factor"] for key in self.simulator.parameter_sizes], 1)
        return self.simulator.models_for(factors.cpu().numpy())


@register_task
class HalfCheetahParams(_ParamsFamily, _HalfCheetah):
    """HalfCheetah-v5 (forward velocity - 0.1 |a|^2) with per-trial masses, damping, friction."""

    name = "halfcheetah-params"
    gym_id = "metarl/HalfCheetahParams-v0"
    Config = HalfCheetahParamsConfig

    def _reward(self, tasks, physics, velocity, action_cost):
        reward = velocity - 0.1 * action_cost
        return reward, torch.zeros_like(reward, dtype=torch.bool)


@register_task
class HopperParams(_ParamsFamily):
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
