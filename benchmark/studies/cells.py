"""A table cell (published beside ours, with z) and the results one invocation gathers.

z = (ours - published) / sqrt(SE_ours^2 + SE_published^2 + rounding^2). SE_published is our
per-trial standard deviation over sqrt(1000): the papers evaluated 1000 trials and printed no error
bars. rounding is the SD of the published rounding (:attr:`TableSpec.rounding_sd`). |z| > 3 is
flagged.

A learned cell is the runs of several seeds: its ``mean`` is their mean and its ``stderr`` the
standard error over seeds (with one seed, that run's standard error over trials); ``trial_stderr``
(the runs' mean standard error over trials) gives the published value's per-trial spread. Its
second number is the paper's selection rule: the seed with the best training return, evaluated on
its held-out trials (``selected_*``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from benchmark.studies.spec import Setting

PUBLISHED_TRIALS = 1000
"""Trials behind every published value."""
FLAG_Z = 3.0
"""Cells with |z| above this are flagged."""


@dataclass
class Cell:
    """One (setting, column) cell: the published value and ours."""

    setting: Setting
    column: str
    strategy: str
    """The classical strategy or learned algorithm that played the cell."""
    published: float | None = None
    """The published value (None: unpublished)."""
    published_se: float | None = None
    """The published standard error, where the paper printed one."""
    rounding_sd: float = 0.0
    """SD of the published value's rounding."""
    mean: float | None = None
    """Our score (None: not run)."""
    stderr: float | None = None
    trials: int = 0
    total_reward: float | None = None
    """Mean total reward per trial (the score itself unless the table normalises it)."""
    tuned: dict[str, Any] = field(default_factory=dict)
    """The hyperparameter chosen on the ``tune`` stream."""
    seconds: float = 0.0
    """Wall time of the cell, its tuning included."""
    run_id: str = ""
    """The MLflow run of a learned cell."""
    note: str = ""
    vs_random: float | None = None
    """Mean total divided by the random policy's mean expected total on the same trials."""
    vs_random_se: float | None = None
    """Delta-method standard error of ``vs_random``."""
    random_published: float | None = None
    """The published value of this row's random-policy column (for :attr:`rescaled`)."""
    random_published_se: float | None = None
    """Uncertainty of that value (its 1000-trial SE estimated from our random cell, rounding)."""
    seeds: tuple[int, ...] = ()
    """The seeds of a learned cell's runs (empty for a classical cell)."""
    ci95: float | None = None
    """Half-width of the 95% Student-t interval of a learned cell's mean over its seeds."""
    trial_stderr: float | None = None
    """A learned cell's mean standard error over trials of its runs (None: ``stderr`` is one)."""
    selected_seed: int | None = None
    """The seed with the best training return (the paper's selection rule)."""
    selected_mean: float | None = None
    """That seed's held-out score."""
    selected_stderr: float | None = None
    """Its standard error over trials."""
    env_steps: int | None = None
    """Env steps each run of a learned cell trained for (the largest when they differ)."""
    cpu_seconds: float | None = None
    """CPU seconds of a learned cell's runs, summed (``seconds`` is their wall time, summed)."""
    commit: str = ""
    """The commit(s) the learned cell's runs ran at."""
    comparable: bool = True
    """False where the published value comes from another task (no z, never flagged)."""
    footnote: str = ""
    """A footnote carried from the invocation that measured the cell (merged cells keep theirs)."""

    @property
    def key(self) -> tuple[str, str]:
        """(setting name, column)."""
        return self.setting.name, self.column

    def _published_sd(self) -> float:
        """The published value's 1000-trial SE (from our per-trial spread) with rounding."""
        per_trial = self.trial_stderr
        if per_trial is None or not math.isfinite(per_trial):
            per_trial = self.stderr
        published_se = per_trial * math.sqrt(self.trials) / math.sqrt(PUBLISHED_TRIALS)
        return math.sqrt(published_se**2 + self.rounding_sd**2)

    def _comparable(self) -> bool:
        return (
            self.comparable
            and self.mean is not None
            and self.published is not None
            and self.stderr is not None
            and math.isfinite(self.stderr)
        )

    @property
    def z(self) -> float | None:
        """(ours - published) in combined standard errors; None when not run or unpublished."""
        if not self._comparable():
            return None
        return (self.mean - self.published) / math.hypot(self.stderr, self._published_sd())

    @property
    def flagged(self) -> bool:
        """True when ours differs from the published value by more than 3 standard errors."""
        return self.z is not None and abs(self.z) > FLAG_Z

    @property
    def rescaled(self) -> float | None:
        """Ours rescaled by the random-policy column: ``vs_random`` times its published value.

        Equals ours divided by (our random / published random) of the row, the random policy's
        expected total standing in for our own random cell; None without the inputs.
        """
        if self.vs_random is None or self.random_published is None:
            return None
        return self.vs_random * self.random_published

    @property
    def rescaled_se(self) -> float | None:
        """Standard error of :attr:`rescaled` (ours, and the published random value's)."""
        if self.rescaled is None or self.vs_random_se is None:
            return None
        relative = (self.random_published_se or 0.0) / self.random_published
        return math.hypot(self.vs_random_se * self.random_published, self.rescaled * relative)

    @property
    def rescaled_z(self) -> float | None:
        """(rescaled - published) in combined standard errors; None when either is missing."""
        if self.rescaled_se is None or not self._comparable():
            return None
        return (self.rescaled - self.published) / math.hypot(self.rescaled_se, self._published_sd())

    @property
    def selected_z(self) -> float | None:
        """(selected seed's score - published) in combined standard errors; None without both."""
        if self.selected_mean is None or not self._comparable():
            return None
        scale = math.hypot(self.selected_stderr or 0.0, self._published_sd())
        return (self.selected_mean - self.published) / scale

    def record(self) -> dict[str, Any]:
        """The cell as a flat dict: setting name and parameters, fields, z and rescaled values."""
        fields = {k: v for k, v in vars(self).items() if k not in ("setting", "rounding_sd")}
        fields["seeds"] = " ".join(str(seed) for seed in self.seeds)
        derived = ("z", "flagged", "rescaled", "rescaled_se", "rescaled_z", "selected_z")
        return (
            {"setting": self.setting.name, **self.setting.task()}
            | fields
            | {key: getattr(self, key) for key in derived}
        )


@dataclass
class Results:
    """What one invocation measured: the table, the diagnostic cells and the footnotes' evidence."""

    table: list[Cell]
    """The published columns' cells, row by row."""
    diagnostics: list[Cell] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    """Measurements the footnote rules cite (filled by the spec's evidence hooks)."""
