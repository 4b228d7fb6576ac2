"""Hyperparameter tuning of the classical strategies, with the grids of the RL² protocol.

A strategy with a grid is played on ``tune`` trials once per grid value, and the value with the
highest mean total reward wins (the first one on a tie). Tuning trials come from the ``tune`` task
stream of the seed and reported results from the ``test`` stream, so no evaluation trial is ever
seen while tuning. Every grid value is played on the very same tuning trials (common random
numbers), which makes the comparison between values sharper than independent draws would.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from baselines.strategies import get_strategy
from benchmark.evaluation import evaluate_policy
from tasks import TaskFamily, require

TUNE_SPLIT = "tune"
EVAL_SPLIT = "test"

TUNING_GRIDS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "eps-greedy": ("eps", tuple(round(0.1 * i, 1) for i in range(11))),
    "ucb1": ("c", tuple(round(0.1 * i, 1) for i in range(11))),
    "ots": ("samples", tuple(range(1, 21))),
    "gittins": ("discount", (0.9, 0.99, 0.999, 0.9999)),
}
"""Strategy name -> (hyperparameter, grid), from the RL² Table 1 protocol (reference README)."""
TUNING_FAMILIES = ("bernoulli-bandit", "dependent-bandit")
"""The families whose strategies these grids tune (other families' strategies are not tuned)."""


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
    if strategy not in TUNING_GRIDS or family not in TUNING_FAMILIES:
        return None
    param = TUNING_GRIDS[strategy][0]
    return None if param in explicit else param


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
        strategy: a strategy with a grid in :data:`TUNING_GRIDS`.
        family: the setting to tune on.
        value: the grid value.
        trials: tuning trials.
        seed: seed whose ``tune`` task stream is played.
        fixed: other hyperparameters, held fixed.
        device: where the trials are played.
    """
    param = TUNING_GRIDS[strategy][0]
    policy = get_strategy(strategy).build(family, {**(fixed or {}), param: value})
    result = evaluate_policy(policy, family, trials, seed, device=device, split=TUNE_SPLIT)
    return result.mean_total_reward


def choose(strategy: str, scores: dict[Any, float], trials: int, seed: int) -> TuningResult:
    """The grid value with the highest score (the first in grid order on a tie).

    Args:
        strategy: a strategy with a grid in :data:`TUNING_GRIDS`.
        scores: the tuning score of every grid value.
        trials: tuning trials per value (recorded).
        seed: the tuning seed (recorded).
    """
    param, grid = TUNING_GRIDS[strategy]
    best = max(grid, key=lambda value: (scores[value], -grid.index(value)))
    text_scores = {str(value): scores[value] for value in grid}
    return TuningResult(strategy, param, best, trials, seed, TUNE_SPLIT, text_scores)


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
        strategy: a strategy with a grid in :data:`TUNING_GRIDS`.
        family: the setting to tune on.
        trials: tuning trials per grid value.
        seed: seed whose ``tune`` task stream is played.
        fixed: other hyperparameters, held fixed.
        device: where the trials are played.
    """
    require(strategy in TUNING_GRIDS, f"strategy '{strategy}' has no tuning grid")
    require(trials >= 1, f"tuning trials must be >= 1, got {trials}")
    grid = TUNING_GRIDS[strategy][1]
    scores = {v: tuning_score(strategy, family, v, trials, seed, fixed, device) for v in grid}
    return choose(strategy, scores, trials, seed)


def explicit_strategy_keys(overrides: list[str]) -> set[str]:
    """The ``strategy.*`` hyperparameters named in ``key=value`` overrides.

    Args:
        overrides: the user's ``key=value`` strings.
    """
    keys = {item.split("=", 1)[0].strip() for item in overrides if "=" in item}
    return {key.removeprefix("strategy.") for key in keys if key.startswith("strategy.")}
