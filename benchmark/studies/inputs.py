"""A study's inputs: its budget (from the table's YAML), its settings and the published numbers.

Every check here runs before anything is computed or written, and a bad value is one line naming
it and the valid ones.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchmark.run.config import check_seed, merge_checked
from benchmark.studies.spec import Setting, TableSpec
from tasks import ConfigError, require


@dataclass
class Budget:
    """One budget of a table's YAML (``benchmark/configs/reproduce/<table>.yaml``)."""

    trials: int = MISSING
    """Held-out evaluation trials per cell (the ``test`` stream)."""
    tune_trials: int = MISSING
    """Tuning trials per grid value (the ``tune`` stream)."""
    strategy_tune_trials: dict[str, int] = field(default_factory=dict)
    """Strategy -> its own tuning trials per grid value (where its grid costs more)."""
    strategy_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Strategy -> hyperparameters held fixed in each of its jobs."""
    learned_settings: list[str] = field(default_factory=list)
    """Settings (by name) whose learned columns are trained."""
    learned_overrides: list[str] = field(default_factory=list)
    """``key=value`` overrides of the learned runs on top of their own configs."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Training seeds of every learned cell (each seed's run is evaluated on its own ``test``
    stream)."""

    def __post_init__(self):
        require(
            bool(self.seeds) and len(set(self.seeds)) == len(self.seeds),
            f"budget seeds must be distinct and at least one, got {self.seeds}",
        )
        for seed in self.seeds:
            check_seed(seed, "budget seeds")
        counts = {"trials": self.trials, "tune_trials": self.tune_trials}
        counts |= {f"strategy_tune_trials.{k}": v for k, v in self.strategy_tune_trials.items()}
        for key, value in counts.items():
            require(value >= 1, f"budget {key} must be >= 1, got {value}")

    def tune_trials_for(self, strategy: str) -> int:
        """Tuning trials per grid value of ``strategy``."""
        return self.strategy_tune_trials.get(strategy, self.tune_trials)


@dataclass
class Run:
    """One invocation of a study: the table, its budget, the rows and the streams' seed."""

    spec: TableSpec
    budget_name: str
    budget: Budget
    trials: int
    """Held-out evaluation trials per cell."""
    seed: int
    """Seed of the tuning and evaluation streams (and of the learned runs)."""
    workers: int
    """Processes for the classical jobs (1 runs them in this process)."""
    settings: list[Setting]
    """The rows of the report (the measured ones, then those merged from an earlier report)."""
    columns: str = "all"
    """The columns this invocation computes: ``learned``, ``classical`` or ``all``."""
    measured: list[Setting] = field(default_factory=list)
    """The settings this invocation computes (the rows it was asked for)."""
    notes: list[str] = field(default_factory=list)
    """Notes of this invocation printed under the report."""

    def __post_init__(self):
        self.measured = self.measured or list(self.settings)

    @property
    def trains(self) -> bool:
        """True when this invocation trains the learned columns' missing runs."""
        return self.columns in ("learned", "all")

    @property
    def evaluates(self) -> bool:
        """True when this invocation tunes and evaluates the classical columns."""
        return self.columns in ("classical", "all")


COLUMN_CHOICES = ("all", "learned", "classical")
"""What ``reproduce --columns`` may compute."""


def load_budget(spec: TableSpec, name: str) -> Budget:
    """The budget called ``name`` from the table's YAML, validated.

    Args:
        spec: the table.
        name: a budget of its YAML (smoke, quick, paper).
    """
    data = OmegaConf.to_container(OmegaConf.load(spec.budget_file))
    require(name in data, f"unknown budget '{name}'; valid budgets: {', '.join(data)}")
    schema = OmegaConf.create({"budget": OmegaConf.structured(Budget)})
    OmegaConf.set_struct(schema, True)
    for mapping in ("strategy_tune_trials", "strategy_params"):  # keys are strategies, any
        OmegaConf.set_struct(schema.budget[mapping], False)
    config = merge_checked(schema, {"budget": data[name]})
    try:
        budget = OmegaConf.to_object(config.budget)
    except OmegaConfBaseException as error:
        if isinstance(error.__cause__, ConfigError):
            raise error.__cause__ from None
        raise ConfigError(f"budget '{name}': {str(error).splitlines()[0]}") from None
    strategies = {c.strategy for c in spec.classical_columns}
    for strategy in (*budget.strategy_tune_trials, *budget.strategy_params):
        require(
            strategy in strategies,
            f"budget '{name}' names strategy '{strategy}', not in {spec.name}; "
            f"valid strategies: {', '.join(sorted(strategies))}",
        )
    parse_settings(spec, budget.learned_settings)
    return budget


def all_settings(spec: TableSpec) -> list[Setting]:
    """Every setting of the table, in the published CSV's order."""
    return [setting for setting, _ in _published_rows(spec)]


def parse_settings(spec: TableSpec, names: list[str] | None) -> list[Setting]:
    """The settings called ``names`` (each once, in the given order); all when empty or None.

    Args:
        spec: the table.
        names: e.g. ``["10x5", "100x50"]`` (Table 1) or ``["10", "100"]`` (Table 2).
    """
    settings = all_settings(spec)
    if not names:
        return settings
    by_name = {setting.name: setting for setting in settings}
    for name in names:
        require(
            name in by_name,
            f"unknown setting '{name}' for {spec.name}; valid settings ({spec.setting_help}): "
            f"{', '.join(by_name)}",
        )
    return [by_name[name] for name in dict.fromkeys(names)]


PUBLISHED_SE = " SE"
"""Suffix of a published CSV column holding the standard error of the column it names."""


def published_table(spec: TableSpec) -> dict[str, dict[str, float]]:
    """The published numbers: setting name -> column -> value (a column left out is unpublished)."""
    return {
        setting.name: {k: v for k, v in values.items() if not k.endswith(PUBLISHED_SE)}
        for setting, values in _published_rows(spec)
    }


def published_errors(spec: TableSpec) -> dict[str, dict[str, float]]:
    """The published standard errors where the paper printed them (``<column> SE`` columns):
    setting name -> column -> SE."""
    return {
        setting.name: {
            k.removesuffix(PUBLISHED_SE): v for k, v in values.items() if k.endswith(PUBLISHED_SE)
        }
        for setting, values in _published_rows(spec)
    }


def _published_rows(spec: TableSpec) -> list[tuple[Setting, dict[str, float]]]:
    rows = []
    with open(spec.published_path, newline="") as handle:
        for row in csv.DictReader(handle):
            params = tuple((param, int(row.pop(key))) for key, param in spec.setting_params)
            setting = Setting(spec.setting_name.format(**dict(params)), params)
            values = {column: float(value) for column, value in row.items() if value != ""}
            rows.append((setting, values))
    return rows
