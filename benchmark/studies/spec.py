"""What a reproduced table is: its settings, columns, published numbers, scoring and footnote rules.

A spec holds no budget (those are in ``benchmark/configs/reproduce/<name>.yaml``) and no procedure:
its hooks (footnote rules, evidence, preparation, job cost) are small functions the pipeline calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.run.config import CONFIG_DIR
from benchmark.run.tracking import SUITE_ROOT

PUBLISHED_DIR = SUITE_ROOT / "results" / "published"
"""Where the published tables ship (inside the suite)."""


@dataclass(frozen=True)
class Column:
    """A column of the table and what fills it: a classical strategy or a learned algorithm."""

    name: str
    """The column's name (that of the published CSV unless it is a diagnostic)."""
    strategy: str | None = None
    """The classical strategy playing the column."""
    algorithm: str | None = None
    """The learned algorithm trained for the column (when ``strategy`` is None)."""
    fixed: tuple[tuple[str, Any], ...] = ()
    """Hyperparameters held fixed, e.g. a diagnostic variant's (``("decay", 0.5)``)."""
    compares: str | None = None
    """The published column a diagnostic column is compared with (None: its own name)."""
    metric: str = "score"
    """The per-run value a learned column shows (a key of the spec's ``run_metrics``)."""

    def __post_init__(self):
        if (self.strategy is None) == (self.algorithm is None):
            raise ValueError(f"column {self.name} needs a strategy or an algorithm, not both")

    @property
    def published_column(self) -> str:
        """The published column this column is compared with."""
        return self.compares or self.name


@dataclass(frozen=True)
class Setting:
    """A row of the table: its name and the task parameters that define it."""

    name: str
    params: tuple[tuple[str, int], ...]
    """(task parameter, value) in the published CSV's order, e.g. (("pulls", 10), ("arms", 5))."""

    def task(self) -> dict[str, int]:
        """The task parameters as ``make_task`` keyword arguments."""
        return dict(self.params)

    def overrides(self) -> list[str]:
        """The task parameters as ``task.KEY=VALUE`` overrides of a learned run."""
        return [f"task.{key}={value}" for key, value in self.params]


@dataclass(frozen=True)
class TableSpec:
    """One published table, as the pipeline reproduces it."""

    name: str
    """The CLI name (``metarl-bench reproduce NAME``) and the budget YAML's file name."""
    title: str
    """The report's heading, e.g. ``RL² Table 1 (Bernoulli bandits)``."""
    family: str
    """The task family every cell plays."""
    published_csv: str
    """The published table's file in ``results/published/``."""
    setting_params: tuple[tuple[str, str], ...]
    """(published CSV column, task parameter) of the columns that define a setting."""
    setting_name: str
    """Format of a setting's name from its task parameters, e.g. ``{pulls}x{arms}``."""
    setting_help: str
    """How a setting is named, for the error listing the valid ones (``PULLSxARMS``)."""
    columns: tuple[Column, ...]
    """The published columns, in order."""
    score_text: str
    """What a cell's number is, for the report (``mean total reward per trial ± ...``)."""
    unexplained: str
    """The footnote of a flagged cell that no footnote rule explains."""
    cost: Callable[[Any], float]
    """Rough relative run time of a classical job (longest first keeps the processes busy)."""
    published_digits: int = 1
    """Decimals of the published numbers (their rounding enters every z)."""
    our_digits: int = 2
    """Decimals of our numbers in the report."""
    diagnostics: tuple[Column, ...] = ()
    """Extra columns, not in the paper, each compared with the published column it names."""
    normalised: bool = False
    """A cell is its mean total over the oracle's mean expected total (delta-method SE)."""
    rescale_by: str | None = None
    """The random policy's column: also rescale every cell by it (ours / the random policy's
    expected total on the same trials, times the row's published value of that column)."""
    notes: tuple[str, ...] = ()
    """Protocol notes printed under every report."""
    footnote_rules: tuple[Callable[..., str | None], ...] = ()
    """``rule(cell, results) -> text or None`` for a flagged cell; the first text wins."""
    evidence: tuple[Callable[..., None], ...] = ()
    """``measure(run, results)``: measurements the footnotes cite, put in ``results.evidence``."""
    prepare: Callable[..., None] | None = None
    """``prepare(run, pool)`` before the classical jobs (e.g. index tables computed in the pool)."""
    train_overrides: Callable[[Setting], list[str]] | None = None
    """The task overrides of a setting's learned runs (None: the setting's own parameters)."""
    run_metrics: Callable[..., dict[str, tuple[float, float]]] | None = None
    """``run_metrics(setting, record) -> {metric: (value, SE over trials)}`` of one learned run
    (None: ``score``, the run's mean total reward, over the oracle's where ``normalised``)."""
    measure_run: Callable[..., dict[str, Any]] | None = None
    """``measure_run(run, run_spec, run_id, tracking_uri) -> JSON-ready dict`` after a learned run:
    the spec's own evaluations of the trained policy, kept in the ledger row (``measurements``)."""
    sections: tuple[Callable[..., list[str]], ...] = ()
    """``section(run, results) -> markdown lines`` added to the report after the tables."""
    comparable: bool = True
    """False: the published numbers come from another task; no z is computed or flagged."""

    @property
    def budget_file(self) -> Path:
        """The budget YAML."""
        return CONFIG_DIR / "reproduce" / f"{self.name}.yaml"

    def ledger(self, out: str | Path) -> Path:
        """The learned runs' ledger of run records under the report folder ``out``."""
        return Path(out) / "ledgers" / f"{self.stem}.csv"

    def learned_overrides(self, setting: Setting) -> list[str]:
        """The task overrides of a learned run at ``setting``."""
        return self.train_overrides(setting) if self.train_overrides else setting.overrides()

    @property
    def published_path(self) -> Path:
        """The published CSV."""
        return PUBLISHED_DIR / self.published_csv

    @property
    def stem(self) -> str:
        """The written files' name without suffix, e.g. ``rl2_table1``."""
        return self.name.replace("-", "_")

    @property
    def rounding_sd(self) -> float:
        """SD of the published rounding: half a unit of the last digit over sqrt(3)."""
        return 0.5 / 10**self.published_digits / math.sqrt(3.0)

    @property
    def classical_columns(self) -> tuple[Column, ...]:
        """The columns a classical strategy plays, the diagnostics last."""
        return tuple(c for c in self.columns if c.strategy is not None) + self.diagnostics

    @property
    def learned_columns(self) -> tuple[Column, ...]:
        """The columns a learned algorithm fills."""
        return tuple(c for c in self.columns if c.algorithm is not None)

    def column(self, name: str) -> Column:
        """The column (or diagnostic) called ``name``."""
        return next(c for c in (*self.columns, *self.diagnostics) if c.name == name)
