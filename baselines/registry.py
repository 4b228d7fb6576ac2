"""The one registry of learned algorithms (Lightning modules), with validated lookups.

Besides the built-ins, an algorithm can be named as ``package.module:ClassName`` (a subclass of
:class:`baselines.base.MetaRLAlgorithm`) or registered by a package through the entry-point group
``metarl_bench.algorithms``.
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from tasks import ConfigError

if TYPE_CHECKING:
    from baselines.base import MetaRLAlgorithm

ALGORITHMS: dict[str, type[MetaRLAlgorithm]] = {}
ENTRY_POINT_GROUP = "metarl_bench.algorithms"


def register_algorithm(cls: type[MetaRLAlgorithm]) -> type[MetaRLAlgorithm]:
    """Class decorator that adds an algorithm to :data:`ALGORITHMS` under ``cls.name``."""
    if cls.name in ALGORITHMS and ALGORITHMS[cls.name] is not cls:
        raise ValueError(f"algorithm '{cls.name}' is registered twice")
    ALGORITHMS[cls.name] = cls
    return cls


def algorithm_names() -> list[str]:
    """The registered algorithm names (built-ins and entry points), sorted."""
    _load_entry_points()
    return sorted(ALGORITHMS)


def get_algorithm_class(name: str) -> type[MetaRLAlgorithm]:
    """Look an algorithm up by registered name or by ``module:Class`` path.

    Args:
        name: e.g. ``lstm-a2c`` or ``my_pkg.my_algo:MyAlgo``.
    """
    if ":" in name:
        return _import_algorithm(name)
    _load_entry_points()
    if name not in ALGORITHMS:
        raise ConfigError(
            f"unknown algorithm '{name}'; valid algorithms: {', '.join(sorted(ALGORITHMS))}"
        )
    return ALGORITHMS[name]


def _import_algorithm(path: str) -> type[MetaRLAlgorithm]:
    from baselines.base import MetaRLAlgorithm

    module_name, _, class_name = path.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"cannot import algorithm '{path}': {error}") from None
    if not (isinstance(obj, type) and issubclass(obj, MetaRLAlgorithm)):
        raise ConfigError(f"'{path}' is not a subclass of baselines.base.MetaRLAlgorithm")
    return obj


@functools.cache
def _load_entry_points() -> None:
    # Scanning the installed distributions is slow next to a lookup; once per process is enough.
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in ALGORITHMS:
            ALGORITHMS[entry.name] = entry.load()
