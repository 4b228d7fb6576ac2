"""The registry of classical (non-learned) strategies: ``evaluate STRATEGY TASK`` finds them here.

A strategy is a factory ``make(family, **params) -> Policy`` plus, optionally, a ``Config``
dataclass of its hyperparameters and the families it supports (None: every family).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from baselines.policy import OraclePolicy, Policy, RandomPolicy
from tasks import ConfigError, TaskFamily


@dataclass
class Strategy:
    """A registered classical strategy."""

    name: str
    make: Callable[..., Policy]
    config: type | None = None
    families: tuple[str, ...] | None = None

    def build(self, family: TaskFamily, params: dict[str, Any] | None = None) -> Policy:
        """The strategy's policy for ``family``; refuses families it does not support."""
        if self.families is not None and family.name not in self.families:
            raise ConfigError(
                f"strategy '{self.name}' does not support task '{family.name}'; "
                f"it supports: {', '.join(self.families)}"
            )
        return self.make(family, **(params or {}))


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(
    name: str, config: type | None = None, families: tuple[str, ...] | None = None
) -> Callable[[Callable[..., Policy]], Callable[..., Policy]]:
    """Decorator that registers a policy factory under ``name``.

    Args:
        name: the strategy's CLI name.
        config: dataclass of hyperparameters (its fields are the accepted ``strategy.*`` keys).
        families: families the strategy supports; None for all.
    """

    def decorate(make: Callable[..., Policy]) -> Callable[..., Policy]:
        STRATEGIES[name] = Strategy(name, make, config, families)
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

# The classical bandit strategies register themselves on import (after the registry exists).
from baselines.classical import bandits  # noqa: E402, F401
