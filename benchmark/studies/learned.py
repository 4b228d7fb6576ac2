"""The learned cells: the runs of a column's seeds at a setting, read from the ledger.

A cell shows two numbers (:class:`benchmark.studies.cells.Cell`):

- the mean over its seeds, with the standard error and the 95% Student-t interval over seeds (n
  stated; one seed: its standard error over trials);
- the paper's selection rule: the seed with the best training return (``train_return``: the
  run's last logged ``train/trial_return``, the mean total reward of the training trials completed
  in its last logging interval; the lowest seed on a tie), its held-out score. The selection never
  looks at the held-out trials.

A run's numbers come from its ledger row (:mod:`benchmark.studies.ledger`) through the spec's
``run_metrics`` (default :func:`score_metrics`), so a table regenerates from the ledger alone.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from benchmark.reporting.stats import mean_ci
from benchmark.run.tuning import EVAL_SPLIT
from benchmark.studies.cells import Cell
from benchmark.studies.inputs import Run
from benchmark.studies.ledger import available, plan, recorded
from benchmark.studies.spec import Column, Setting, TableSpec
from tasks import make_task, task_generator

SCORE = "score"
"""The metric of a column that shows the table's score."""


def learned_cells(run: Run, ledger) -> list[Cell]:
    """The learned cells of the run's rows whose runs are in ``ledger`` (none found: no cell).

    Args:
        run: the invocation (its rows, budget seeds and overrides define the runs looked up).
        ledger: the ledger's records.
    """
    rows = recorded(ledger)
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for planned in plan(run, run.settings):
        if planned.key in rows:
            key = (planned.setting.name, planned.column.name)
            runs.setdefault(key, []).append(rows[planned.key])
    by_name = {setting.name: setting for setting in run.settings}
    return [
        seed_cell(run.spec, by_name[setting], run.spec.column(column), found)
        for (setting, column), found in runs.items()
    ]


def seed_cell(spec: TableSpec, setting: Setting, column: Column, records: list[dict]) -> Cell:
    """The cell of ``column`` at ``setting`` from its runs' records (one per seed).

    Args:
        spec: the table (its ``run_metrics`` turn a record into the column's value).
        setting: the row.
        column: the learned column.
        records: the ledger rows of the cell's runs.
    """
    records = sorted(records, key=lambda record: int(record["seed"]))
    metrics = [(spec.run_metrics or score_metrics)(spec, setting, r) for r in records]
    values = [m[column.metric] for m in metrics]
    mean, stderr, ci95 = over_seeds([value for value, _ in values], values[0][1])
    cell = Cell(
        setting, column.name, column.algorithm, mean=mean, stderr=stderr, ci95=ci95,
        trials=int(records[0]["trials"]), seeds=tuple(int(r["seed"]) for r in records),
        trial_stderr=_mean([se for _, se in values]), comparable=spec.comparable,
        total_reward=_mean([float(r["total_reward"]) for r in records]),
        seconds=sum(_number(r["wall_seconds"]) for r in records),
        cpu_seconds=sum(_number(r["cpu_seconds"]) for r in records),
        env_steps=max(int(_number(r["env_steps"])) for r in records),
        commit=" ".join(sorted({str(r["commit"])[:10] for r in records})),
        run_id=" ".join(str(r["run_id"]) for r in records),
        note=f"{len(records)} seed(s)",
    )  # fmt: skip
    if "vs_random" in metrics[0]:
        ratios = [m["vs_random"] for m in metrics]
        cell.vs_random, cell.vs_random_se, _ = over_seeds([v for v, _ in ratios], ratios[0][1])
    best = select_seed(records)
    if best is not None:
        value, se = values[records.index(best)]
        cell.selected_seed, cell.selected_mean, cell.selected_stderr = int(best["seed"]), value, se
    return cell


def over_seeds(values: list[float], trial_se: float) -> tuple[float, float, float | None]:
    """Mean, standard error and 95% CI half-width over seeds; one seed: its SE over trials."""
    mean, half_width = mean_ci(values)
    if len(values) < 2:
        return float(mean), trial_se, None
    return float(mean), float(np.std(values, ddof=1) / math.sqrt(len(values))), float(half_width)


def select_seed(records: list[dict]) -> dict | None:
    """The record with the best training return (the lowest seed on a tie); None when no run
    logged one."""
    scored = [r for r in records if math.isfinite(_number(r["train_return"]))]
    if not scored:
        return None
    return max(scored, key=lambda r: (_number(r["train_return"]), -int(r["seed"])))


def score_metrics(spec: TableSpec, setting: Setting, record: dict) -> dict[str, tuple]:
    """``score`` of a run: its mean total reward, or where the table normalises, over the oracle's
    mean expected total of its evaluation tasks (and ``vs_random``, over the random policy's)."""
    total, stderr = float(record["total_reward"]), _number(record.get("stderr", ""))
    if not spec.normalised:
        return {SCORE: (total, stderr)}
    oracle, random = reference_means(
        spec.family, setting.params, int(record["trials"]), int(record["seed"])
    )
    return {
        SCORE: (total / oracle, stderr / oracle),
        "vs_random": (total / random, stderr / random),
    }


@lru_cache(maxsize=64)
def reference_means(family: str, params: tuple, trials: int, seed: int) -> tuple[float, float]:
    """The oracle's and the random policy's mean expected totals over a learned run's evaluation
    tasks (the ``test`` stream of its seed)."""
    task = make_task(family, **dict(params))
    references = task.reference_scores(task.sample(trials, task_generator(seed, EVAL_SPLIT)))
    return references["oracle"].mean().item(), references["random"].mean().item()


def learned_note(run: Run, column: Column) -> str:
    """The report's note on how ``column`` was filled."""
    if not available(column.algorithm):
        return f"`{column.algorithm}` ({column.name}): not run (no such algorithm is registered)."
    seeds = ", ".join(str(seed) for seed in run.budget.seeds)
    trained = [s.name for s in run.measured if s.name in run.budget.learned_settings]
    now = f"trained by this invocation where missing at {', '.join(trained)}" if trained else ""
    if not run.trains:
        now = f"not trained by this invocation (--columns {run.columns})"
    return (
        f"`{column.algorithm}` ({column.name}): at its pair-YAML defaults for each "
        f"setting (budget overrides: {' '.join(run.budget.learned_overrides) or 'none'}), seeds "
        f"{seeds}, each seed's run evaluated on its own `test` stream; {now or 'nothing trained'}"
        "; a cell without runs in the ledger shows the published value only."
    )


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _number(value: Any) -> float:
    """A ledger number (blank: NaN)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
