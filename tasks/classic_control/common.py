"""What the classic-control families share: config checks, sampling and Monte-Carlo references.

Reference scores are Monte-Carlo estimates: for every task of the batch, ``reference_rollouts``
whole trials are played by the uniform random policy and by the oracle (all tasks and repetitions
in one batch, one tensor step per time step), from a fixed seed so the estimate is deterministic.
Each family's oracle knows the physical constants of its task (see the family modules).

Parameter ranges: by default (``ranges='suite'``) each constant is drawn uniformly from its
``*_range`` field. A family may also offer named presets from the literature (``RANGE_PRESETS``
on its config, e.g. Packer et al. 2018's 'packer' and 'packer-extreme'); a preset gives every
constant a union of intervals, drawn uniformly over the union: an interval is picked with
probability proportional to its length, then a point uniformly inside it. A fixed constant is a
zero-length interval, and it draws nothing from the task stream. A preset may also tie a constant
to another (the name of the other's ``*_range`` field in place of intervals): both then take the
other's one draw per task, e.g. acrobot's two link masses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch

from tasks.base import (
    EnvState,
    FamilyConfig,
    TaskBatch,
    TaskFamily,
    check_choices,
    choice,
    require,
)

DTYPES = {"float32": torch.float32, "float64": torch.float64}
SUITE = "suite"
"""The ``ranges`` value that draws every constant from its ``*_range`` field."""
RANGE_SUFFIX = "_range"
REFERENCE_SEED = 20_240_601
"""Seed of the Monte-Carlo rollouts that estimate the reference scores."""


def range_field(low: float, high: float) -> list[float]:
    """A dataclass field defaulting to the pair ``[low, high]`` (a ``*_range`` config field)."""
    return field(default_factory=lambda: [low, high])


def check_range(config: FamilyConfig, key: str, positive: bool = True) -> None:
    """Validate ``config.<key>`` as a [low, high] pair of numbers; raise a one-line ConfigError.

    Args:
        config: the family's config.
        key: the field name, e.g. ``length_range``.
        positive: require low > 0 (masses, lengths, gravity).
    """
    value = getattr(config, key)
    require(
        isinstance(value, list | tuple) and len(value) == 2,
        f"task.{key} must be a list of two numbers [low, high], got {value}",
    )
    require(
        all(isinstance(v, int | float) and not isinstance(v, bool) for v in value),
        f"task.{key} must be a list of two numbers [low, high], got {value}",
    )
    low, high = float(value[0]), float(value[1])
    require(low <= high, f"task.{key}: low {low} > high {high}")
    if positive:
        require(low > 0, f"task.{key} must be > 0, got low {low}")


Intervals = tuple[tuple[float, float], ...]
"""A union of closed intervals [(low, high), ...], sampled uniformly over the union."""


def sample_union(
    intervals: Intervals, n: int, generator: torch.Generator, dtype: torch.dtype
) -> torch.Tensor:
    """n draws, uniform over the union of ``intervals`` (disjoint, each low <= high), [n].

    One uniform draw u in [0, total length) is mapped onto the intervals laid end to end, which
    picks an interval with probability proportional to its length and a point uniformly in it.
    A single interval is ``low + (high - low) * u`` exactly, a single zero-length one the constant
    itself (no draw); if every interval of several has zero length, they are picked with equal
    probability.
    """
    if len(intervals) == 1 and intervals[0][0] == intervals[0][1]:
        return torch.full((n,), intervals[0][0], dtype=dtype, device=generator.device)
    draw = torch.rand(n, generator=generator, device=generator.device, dtype=dtype)
    if len(intervals) == 1:
        low, high = intervals[0]
        return low + (high - low) * draw
    lows = torch.tensor([low for low, _ in intervals], dtype=dtype, device=draw.device)
    widths = torch.tensor([high - low for low, high in intervals], dtype=dtype, device=draw.device)
    if float(widths.sum()) == 0:
        index = (draw * len(intervals)).long().clamp(max=len(intervals) - 1)
        return lows[index]
    ends = torch.cumsum(widths, 0)
    position = draw * ends[-1]
    index = torch.searchsorted(ends, position, right=True).clamp(max=len(intervals) - 1)
    return lows[index] + (position - (ends[index] - widths[index])).clamp(min=0)


def check_positive_int(config: FamilyConfig, key: str, low: int = 1) -> None:
    """Validate ``config.<key>`` as an integer >= ``low``."""
    value = getattr(config, key)
    require(
        isinstance(value, int) and not isinstance(value, bool) and value >= low,
        f"task.{key} must be an integer >= {low}, got {value}",
    )


@dataclass
class ClassicControlConfig(FamilyConfig):
    """Fields shared by the classic-control families."""

    episodes: int = 2
    """Episodes per trial (same physical constants, hidden state carried)."""
    max_steps: int = 200
    """Steps after which an episode is truncated."""
    dtype: str = choice("float32", DTYPES)
    """Precision of the physical state: float32 or float64 (observations are always float32)."""
    reference_rollouts: int = 4
    """Monte-Carlo trials per task when estimating the random and oracle reference scores."""

    RANGE_PRESETS: ClassVar[dict[str, dict[str, Intervals | str]]] = {}
    """Named parameter ranges beside 'suite' (the ``*_range`` fields): preset -> ``*_range``
    field -> its intervals, or the name of the field whose draw it shares (tied). A family
    offering presets declares ``ranges = choice('suite', ...)``."""

    def __post_init__(self):
        for key in ("episodes", "max_steps", "reference_rollouts"):
            check_positive_int(self, key)
        check_choices(self)
        for key in self.ranged_keys():
            check_range(self, key)
        preset = self.preset(vars(self))
        if preset != SUITE:
            for spec in fields(self):
                if spec.name.endswith(RANGE_SUFFIX):
                    require(
                        getattr(self, spec.name) == spec.default_factory(),
                        f"task.{spec.name} cannot be set with task.ranges={preset} (the preset "
                        f"fixes every range); use task.ranges=suite",
                    )

    @classmethod
    def shown(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Without the ``*_range`` fields where a ``ranges`` preset fixes every range."""
        if cls.preset(params) == SUITE:
            return dict(params)
        return {k: v for k, v in params.items() if not k.endswith(RANGE_SUFFIX)}

    @staticmethod
    def preset(params: dict[str, Any]) -> str:
        """The ``ranges`` preset named in ``params`` (a family without presets: 'suite')."""
        return params.get("ranges", SUITE)

    def intervals(self, key: str) -> Intervals | str:
        """The intervals the constant of the ``key`` field (``<name>_range``) is drawn from, or
        the name of the field whose draw it shares."""
        preset = self.preset(vars(self))
        if preset == SUITE:
            low, high = (float(v) for v in getattr(self, key))
            return ((low, high),)
        return self.RANGE_PRESETS[preset][key]

    def ranged_keys(self) -> list[str]:
        """The ``*_range`` fields, in declaration order."""
        return [key for key in self.__dataclass_fields__ if key.endswith(RANGE_SUFFIX)]


class ClassicControlFamily(TaskFamily):
    """Shared sampling, bookkeeping and Monte-Carlo references of the classic-control families.

    A subclass declares its ranged constants as ``<name>_range`` config fields (each becomes a
    task tensor ``<name>`` of shape [n]), keeps its physical state in ``state["s"]`` [n, k] and
    implements ``observe``, ``step``, ``oracle_action`` and ``initial_state``.
    """

    OBS_DIM: ClassVar[int]

    @property
    def dtype(self) -> torch.dtype:
        """Precision of the physical state and the task constants."""
        return DTYPES[self.config.dtype]

    @property
    def obs_dim(self) -> int:
        return self.OBS_DIM

    @property
    def max_episode_steps(self) -> int:
        return self.config.max_steps

    @property
    def episodes_per_trial(self) -> int:
        return self.config.episodes

    def sample(self, n: int, generator: torch.Generator) -> TaskBatch:
        tasks = {}
        for key in self.config.ranged_keys():
            intervals = self.config.intervals(key)
            if isinstance(intervals, str):  # tied: the named constant's draw (declared before)
                tasks[key.removesuffix("_range")] = tasks[intervals.removesuffix("_range")].clone()
            else:
                tasks[key.removesuffix("_range")] = sample_union(
                    intervals, n, generator, self.dtype
                )
        return tasks

    def uniform_state(
        self, tasks: TaskBatch, generator: torch.Generator, high: list[float]
    ) -> torch.Tensor:
        """A state drawn uniformly from [-high, high] per component, [n, len(high)]."""
        first = next(iter(tasks.values()))
        bound = torch.tensor(high, dtype=self.dtype, device=first.device)
        draw = torch.rand(
            first.shape[0], len(high), generator=generator, device=first.device, dtype=self.dtype
        )
        return (2 * draw - 1) * bound

    def reference_scores(self, tasks: TaskBatch) -> dict[str, torch.Tensor]:
        reps = self.config.reference_rollouts
        n = next(iter(tasks.values())).shape[0]
        repeated = {key: value.repeat(reps) for key, value in tasks.items()}
        device = next(iter(tasks.values())).device
        generator = torch.Generator(device=device).manual_seed(REFERENCE_SEED)

        def uniform(batch: TaskBatch, state: EnvState) -> torch.Tensor:
            size = (state["s"].shape[0],)
            return torch.randint(self.num_actions, size, generator=generator, device=device)

        scores = {}
        for name, policy in (("random", uniform), ("oracle", self.oracle_action)):
            totals = self.rollout_totals(repeated, policy, generator)
            scores[name] = totals.view(reps, n).mean(0).float()
        return scores

    def rollout_totals(
        self,
        tasks: TaskBatch,
        policy: Callable[[TaskBatch, EnvState], torch.Tensor],
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Total reward of one whole trial per task under ``policy`` (state-feedback), [n].

        Args:
            tasks: the task batch.
            policy: maps (tasks, state) to actions, long [n].
            generator: drives initial states (and the policy, if it draws).
        """
        totals = torch.zeros(next(iter(tasks.values())).shape[0], dtype=self.dtype)
        totals = totals.to(next(iter(tasks.values())).device)
        for _ in range(self.config.episodes):
            state = self.initial_state(tasks, generator)
            alive = torch.ones_like(totals, dtype=torch.bool)
            for _ in range(self.config.max_steps):
                action = policy(tasks, state)
                state, reward, terminated = self.step(tasks, state, action, generator)
                totals += torch.where(alive, reward.to(self.dtype), 0.0)
                alive = alive & ~terminated
                if not bool(alive.any()):
                    break
        return totals
