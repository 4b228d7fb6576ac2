"""Task families: what agents are tested on. Importing this package registers every family."""

from tasks import (
    bandits,  # noqa: F401  (registers the bandit families)
    maze,  # noqa: F401  (registers maze)
    tabular_mdp,  # noqa: F401  (registers tabular-mdp)
    two_step,  # noqa: F401  (registers two-step)
)
from tasks.base import ConfigError, TaskFamily, require, task_generator
from tasks.classic_control import (
    acrobot,  # noqa: F401  (registers acrobot-params)
    cartpole,  # noqa: F401  (registers cartpole-params)
    pendulum,  # noqa: F401  (registers pendulum-params)
)
from tasks.gym_env import MetaRLObservation, register_gym_envs
from tasks.mujoco import (
    half_cheetah,  # noqa: F401  (registers the halfcheetah-* families)
    hopper,  # noqa: F401  (registers hopper-params)
)
from tasks.registry import TASKS, get_task_class, make_task, setting_label, task_names
from tasks.trial import (
    StepView,
    Transition,
    TrialEngine,
    action_codes,
    build_phi,
    phi_dim,
    step_record,
)

register_gym_envs()

__all__ = [
    "TASKS",
    "ConfigError",
    "MetaRLObservation",
    "StepView",
    "TaskFamily",
    "TrialEngine",
    "Transition",
    "action_codes",
    "build_phi",
    "get_task_class",
    "make_task",
    "require",
    "setting_label",
    "phi_dim",
    "step_record",
    "task_generator",
    "task_names",
]
