"""The registry of classical (non-learned) strategies: ``evaluate STRATEGY TASK`` finds them here.

A strategy is a factory ``make(family, **params) -> Policy`` plus, optionally, a ``Config``
dataclass of its hyperparameters and the families it supports (None: every family). A config field
whose metadata holds ``"grid"`` is the hyperparameter that tuning chooses, over those values
(``field(default=0.2, metadata={GRID: (0.0, 0.1, ...)})``); a config has one such field at most.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from baselines.policy import OraclePolicy, Policy, RandomPolicy
from tasks import ConfigError, TaskFamily

GRID = "grid"
"""The metadata key of a config field that holds the field's tuning grid."""


@dataclass(frozen=True)
class Grid:
    """The values tuning tries for one hyperparameter, in the order that breaks ties."""

    param: str
    values: tuple[Any, ...]


def config_grid(config: type | None) -> Grid | None:
    """The tuning grid declared on ``config`` (see :data:`GRID`), or None when it declares none.

    Args:
        config: a strategy's hyperparameter dataclass, or None.
    """
    if config is None:
        return None
    found = [Grid(f.name, tuple(f.metadata[GRID])) for f in fields(config) if GRID in f.metadata]
    if len(found) > 1:
        raise ValueError(f"{config.__name__} declares more than one tuning grid")
    return found[0] if found else None


@dataclass
class Variant:
    """One family-specific implementation of a strategy."""

    make: Callable[..., Policy]
    config: type | None = None


@dataclass
class Strategy:
    """A registered classical strategy: one name, one implementation per family (or for all).

    The same name (``eps-greedy``, ``random``) may serve several families with different
    implementations; a variant registered with ``families=None`` serves every family that has no
    variant of its own.
    """

    name: str
    variants: dict[str | None, Variant] = field(default_factory=dict)

    @property
    def families(self) -> tuple[str, ...] | None:
        """The supported families; None when a variant serves every family."""
        if None in self.variants:
            return None
        return tuple(name for name in self.variants if name is not None)

    @property
    def config(self) -> type | None:
        """The hyperparameter dataclass of the first variant with one (see :meth:`config_for`)."""
        return next((v.config for v in self.variants.values() if v.config is not None), None)

    def config_for(self, family_name: str) -> type | None:
        """The hyperparameter dataclass of the variant serving ``family_name``."""
        return self.variant(family_name).config

    def grid_for(self, family_name: str) -> Grid | None:
        """The tuning grid of the variant serving ``family_name``; None without one (or variant)."""
        found = self.variants.get(family_name, self.variants.get(None))
        return None if found is None else config_grid(found.config)

    def variant(self, family_name: str) -> Variant:
        """The variant serving ``family_name``; refuses families the strategy does not support."""
        found = self.variants.get(family_name, self.variants.get(None))
        if found is None:
            raise ConfigError(
                f"strategy '{self.name}' does not support task '{family_name}'; "
                f"it supports: {', '.join(self.families or ())}"
            )
        return found

    def build(self, family: TaskFamily, params: dict[str, Any] | None = None) -> Policy:
        """The strategy's policy for ``family``; refuses families it does not support."""
        return self.variant(family.name).make(family, **(params or {}))


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(
    name: str, config: type | None = None, families: tuple[str, ...] | None = None
) -> Callable[[Callable[..., Policy]], Callable[..., Policy]]:
    """Decorator that registers a policy factory under ``name`` for ``families``.

    Registering an existing name for other families adds a variant to it; registering the same
    (name, family) twice is an error.

    Args:
        name: the strategy's CLI name.
        config: dataclass of hyperparameters (its fields are the accepted ``strategy.*`` keys).
        families: families this factory serves; None for every family without its own variant.
    """

    def decorate(make: Callable[..., Policy]) -> Callable[..., Policy]:
        strategy = STRATEGIES.setdefault(name, Strategy(name))
        for family in families if families is not None else (None,):
            if family in strategy.variants:
                raise ValueError(f"strategy '{name}' is registered twice for {family or 'all'}")
            strategy.variants[family] = Variant(make, config)
        return make

    return decorate


def strategy_names() -> list[str]:
    """The registered strategy names, sorted."""
    return sorted(STRATEGIES)


def get_strategy(name: str) -> Strategy:
    """Look a strategy up by name; an unknown name lists the valid ones."""
    if name not in STRATEGIES:
        raise ConfigError(
            f"unknown strategy '{name}'; valid strategies: {', '.join(strategy_names())}"
        )
    return STRATEGIES[name]


register_strategy("random")(lambda family: RandomPolicy())
register_strategy("oracle")(lambda family: OraclePolicy())
