"""What the MuJoCo families share: trial checks, state handling, stepping and references.

References: ``random`` is a Monte-Carlo estimate, one trial of the uniform random policy on every
task (an unbiased estimate per task; it costs one extra trial per evaluated task). No optimal
policy is known for these tasks, so there is no oracle policy: the ``oracle`` strategy refuses
these families (``has_oracle = False``), and ``oracle_action`` returns the zero action only so the
batched contract holds. The ``oracle`` reference is

- ``halfcheetah-vel``: 0, the exact upper bound of the return (every reward is -|error| - cost,
  at most 0): the ideal of tracking the target from the first step at no control cost, which no
  policy reaches. The normalised score is then the fraction of the random policy's loss removed.
- ``halfcheetah-dir`` and ``-params``: NaN (no bound exists: the reward grows with speed), and
  with it the normalised score and the regret of an evaluation.

The upper reference of every MuJoCo family is measured instead: the same algorithm trained at the
same budget with ``task.reveal=true`` (:class:`MujocoConfig`), which appends the trial's task
parameters to every observation, so the policy need not infer the task. Tables built from runs
normalise to it where the oracle reference is NaN (``benchmark.reporting.references``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from tasks.base import EnvState, FamilyConfig, TaskBatch, TaskFamily, require
from tasks.mujoco.simulator import Simulator, require_mujoco

RANDOM_REFERENCE_SEED = 12345
"""Seed of the Monte-Carlo random-policy reference (the same for every evaluation)."""


@dataclass
class MujocoConfig(FamilyConfig):
    """The fields every MuJoCo family has: the trial's length and whether the task is revealed."""

    episode_steps: int = 200
    """Steps per episode."""
    episodes: int = 2
    """Episodes per trial on one task."""
    reveal: bool = False
    """Append the trial's task parameters, scaled to about [-1, 1], to every observation: a
    policy trained so need not infer the task, which makes it the family's upper reference."""

    def __post_init__(self):
        require(
            isinstance(self.episode_steps, int) and self.episode_steps >= 1,
            f"task.episode_steps must be >= 1, got {self.episode_steps}",
        )
        require(
            isinstance(self.episodes, int) and self.episodes >= 1,
            f"task.episodes must be >= 1, got {self.episodes}",
        )
        require(
            isinstance(self.reveal, bool),
            f"task.reveal must be true or false, got {self.reveal!r}",
        )


@dataclass
class ParamsConfig(MujocoConfig):
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
        super().__post_init__()
        for key in ("mass_scale", "damping_scale", "friction_scale"):
            value = getattr(self, key)
            require(value >= 1.0, f"task.{key} must be >= 1 (factors in [1/s, s]), got {value}")


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
        return nq - 1 + nv + (self.task_dim if self.config.reveal else 0)

    @property
    def task_dim(self) -> int:
        """The number of task features :meth:`task_features` gives per task."""
        raise NotImplementedError

    def task_features(self, tasks: TaskBatch) -> torch.Tensor:
        """The task parameters as ``task.reveal`` shows them, about in [-1, 1], float [n, task_dim].

        Args:
            tasks: the trials' tasks.
        """
        raise NotImplementedError

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
        parts = [physics[:, 2 : 1 + nq], self._observed_qvel(physics[:, 1 + nq :])]
        if self.config.reveal:
            parts.append(self.task_features(tasks).to(physics))
        return torch.cat(parts, 1).float()

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


class ParamsFamily(MujocoFamily):
    """Per-trial dynamics: one log-uniform factor per body mass, dof damping and geom friction.

    Revealed (``task.reveal``) as log(factor) / log(s) of each, in [-1, 1] (0 where s = 1).
    """

    @property
    def task_dim(self) -> int:
        return sum(self.simulator.parameter_sizes.values())

    def task_features(self, tasks: TaskBatch) -> torch.Tensor:
        features = []
        for key in self.simulator.parameter_sizes:
            log_s = math.log(getattr(self.config, f"{key}_scale"))
            log_factor = tasks[f"{key}_factor"].log()
            features.append(log_factor / log_s if log_s > 0 else torch.zeros_like(log_factor))
        return torch.cat(features, 1).float()

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
