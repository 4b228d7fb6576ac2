"""The batched MuJoCo kernel of the MuJoCo families, and the check that MuJoCo is installed.

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
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from tasks.base import ConfigError

INSTALL_HINT = "pip install 'metarl-bench[mujoco]'"


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
