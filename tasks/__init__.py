"""Task families: what agents are tested on. Importing this package registers every family."""

from tasks import (
    bandits,  # noqa: F401  (registers the bandit families)
    classic_control,  # noqa: F401  (registers cartpole-, pendulum- and acrobot-params)
    maze,  # noqa: F401  (registers maze)
    mujoco,  # noqa: F401  (registers halfcheetah-vel, halfcheetah-params, hopper-params)
    tabular_mdp,  # noqa: F401  (registers tabular-mdp)
    two_step,  # noqa: F401  (registers two-step)
)
from tasks.base import ConfigError, TaskFamily, require, task_generator
from tasks.gym_env import MetaRLObservation, register_gym_envs
from tasks.registry import TASKS, get_task_class, make_task, task_names
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
    "phi_dim",
    "step_record",
    "task_generator",
    "task_names",
]
