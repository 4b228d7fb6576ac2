"""Hyperparameter tuning of the classical strategies over the grids declared on their configs.

A strategy's grid is a field of its config dataclass (``baselines/classical``; see
:func:`baselines.strategies.config_grid`). The strategy is played on ``tune`` trials once per grid
value, and the value with the highest mean total reward wins (the first in grid order on a tie).
Tuning trials come from the ``tune`` task stream of the seed and reported results from the ``test``
stream, so no evaluation trial is ever seen while tuning. Every grid value is played on the very
same tuning trials (common random numbers), which makes the comparison between values sharper than
independent draws would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from baselines.strategies import STRATEGIES, Grid, get_strategy
from benchmark.run.evaluation import evaluate_policy
from tasks import TaskFamily, require

TUNE_SPLIT = "tune"
EVAL_SPLIT = "test"

TUNING_FAMILIES = ("bernoulli-bandit", "dependent-bandit")
"""The families on which ``evaluate`` tunes a strategy that has a grid (the tabular-MDP grids are
tuned by ``reproduce rl2-table2``, whose protocol they are, not on every ``evaluate``)."""


def grid_of(strategy: str, family: str) -> Grid | None:
    """The tuning grid of ``strategy`` on ``family``; None when it has none there.

    Args:
        strategy: a strategy name (a name that is no registered strategy has no grid).
        family: a task family name.
    """
    return STRATEGIES[strategy].grid_for(family) if strategy in STRATEGIES else None


def best_value(values: Sequence[Any], scores: dict[Any, float]) -> Any:
    """The value of highest score, the first in ``values`` on a tie.

    Args:
        values: the grid, in order.
        scores: the score of every grid value.
    """
    return max(values, key=lambda value: (scores[value], -values.index(value)))


@dataclass
class TuningResult:
    """The outcome of tuning one hyperparameter of one strategy on one setting."""

    strategy: str
    param: str
    value: Any
    trials: int
    seed: int
    split: str
    scores: dict[str, float] = field(default_factory=dict)
    """Mean total reward on the tuning trials per grid value (keys are the values as text)."""

    @property
    def tuned(self) -> dict[str, Any]:
        """``{param: chosen value}``, as reported next to every result."""
        return {self.param: self.value}

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def tuned_param(
    strategy: str,
    explicit: set[str] | frozenset[str] = frozenset(),
    family: str = "bernoulli-bandit",
) -> str | None:
    """The hyperparameter of ``strategy`` that evaluation tunes, or None.

    Args:
        strategy: a registered strategy name.
        explicit: hyperparameters the user set; a value given explicitly is never tuned.
        family: the task family evaluated on (only the bandit families are tuned).
    """
    grid = grid_of(strategy, family) if family in TUNING_FAMILIES else None
    if grid is None:
        return None
    return None if grid.param in explicit else grid.param


def tuning_score(
    strategy: str,
    family: TaskFamily,
    value: Any,
    trials: int,
    seed: int,
    fixed: dict[str, Any] | None = None,
    device: str = "cpu",
) -> float:
    """Mean total reward of ``strategy`` with its tuned hyperparameter at ``value`` on tune trials.

    Args:
        strategy: a strategy with a grid on ``family``.
        family: the setting to tune on.
        value: the grid value.
        trials: tuning trials.
        seed: seed whose ``tune`` task stream is played.
        fixed: other hyperparameters, held fixed.
        device: where the trials are played.
    """
    param = grid_of(strategy, family.name).param
    policy = get_strategy(strategy).build(family, {**(fixed or {}), param: value})
    result = evaluate_policy(policy, family, trials, seed, device=device, split=TUNE_SPLIT)
    return result.mean_total_reward


def choose(
    strategy: str, grid: Grid, scores: dict[Any, float], trials: int, seed: int
) -> TuningResult:
    """The grid value with the highest score (the first in grid order on a tie).

    Args:
        strategy: the strategy tuned (recorded).
        grid: its grid.
        scores: the tuning score of every grid value.
        trials: tuning trials per value (recorded).
        seed: the tuning seed (recorded).
    """
    best = best_value(grid.values, scores)
    text_scores = {str(value): scores[value] for value in grid.values}
    return TuningResult(strategy, grid.param, best, trials, seed, TUNE_SPLIT, text_scores)


def tune_strategy(
    strategy: str,
    family: TaskFamily,
    trials: int,
    seed: int,
    fixed: dict[str, Any] | None = None,
    device: str = "cpu",
) -> TuningResult:
    """Pick the grid value of ``strategy``'s hyperparameter with the best mean on tuning trials.

    Args:
        strategy: a strategy with a grid on ``family``.
        family: the setting to tune on.
        trials: tuning trials per grid value.
        seed: seed whose ``tune`` task stream is played.
        fixed: other hyperparameters, held fixed.
        device: where the trials are played.
    """
    grid = grid_of(strategy, family.name)
    require(grid is not None, f"strategy '{strategy}' has no tuning grid on {family.name}")
    require(trials >= 1, f"tuning trials must be >= 1, got {trials}")
    values = grid.values
    scores = {v: tuning_score(strategy, family, v, trials, seed, fixed, device) for v in values}
    return choose(strategy, grid, scores, trials, seed)


def explicit_strategy_keys(overrides: list[str]) -> set[str]:
    """The ``strategy.*`` hyperparameters named in ``key=value`` overrides.

    Args:
        overrides: the user's ``key=value`` strings.
    """
    keys = {item.split("=", 1)[0].strip() for item in overrides if "=" in item}
    return {key.removeprefix("strategy.") for key in keys if key.startswith("strategy.")}
