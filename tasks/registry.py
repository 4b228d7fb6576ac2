"""The one registry of task families: names to classes, with validated lookups."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks.base import ConfigError, TaskFamily

TASKS: dict[str, type[TaskFamily]] = {}


def register_task(cls: type[TaskFamily]) -> type[TaskFamily]:
    """Class decorator that adds a family to :data:`TASKS` under ``cls.name``."""
    if cls.name in TASKS:
        raise ValueError(f"task family '{cls.name}' is registered twice")
    TASKS[cls.name] = cls
    return cls


def task_names() -> list[str]:
    """The registered family names, sorted."""
    return sorted(TASKS)


def get_task_class(name: str) -> type[TaskFamily]:
    """Look a family up by name; an unknown name lists the valid ones.

    Args:
        name: a registered family name such as ``bernoulli-bandit``.
    """
    if name not in TASKS:
        raise ConfigError(f"unknown task '{name}'; valid tasks: {', '.join(task_names())}")
    return TASKS[name]


def setting_label(task: str, params: Mapping[str, Any]) -> str:
    """A setting as text, as tables show it: ``<family> key=value ...``.

    A registered family's parameters come in its ``Config`` declaration order, without the ones
    its ``Config.shown`` leaves out (parameters a preset makes inert); an unregistered family's
    come sorted by name.

    Args:
        task: the family name.
        params: its ``task.*`` values (all of them, or those a run recorded).
    """
    cls = TASKS.get(task)
    if cls is None:
        shown = dict(sorted(params.items()))
    else:
        order = list(cls.Config.__dataclass_fields__)
        shown = cls.Config.shown({k: params[k] for k in order if k in params})
    return " ".join([task, *(f"{k}={v}" for k, v in shown.items())])


def make_task(name: str, **params: Any) -> TaskFamily:
    """Build a family from its name and parameters (validated by its ``Config``).

    Args:
        name: a registered family name.
        **params: fields of the family's ``Config`` dataclass.
    """
    cls = get_task_class(name)
    valid = set(cls.Config.__dataclass_fields__)
    unknown = sorted(set(params) - valid)
    if unknown:
        raise ConfigError(
            f"unknown key 'task.{unknown[0]}' for {name}; valid keys: {', '.join(sorted(valid))}"
        )
    return cls(cls.Config(**params))
