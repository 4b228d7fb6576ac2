"""The learned columns' ledger: one run record per finished training run, merged as it finishes.

A learned cell is the runs of the budget's seeds (:attr:`Budget.seeds`) of one algorithm at one
setting. Each planned run is a resolved run config: the setting's task overrides (the spec's
:attr:`TableSpec.train_overrides`), the seed, the held-out trials, then the budget's
``learned_overrides`` on top of the algorithm's pair-YAML defaults for that setting. Its identity
is (algorithm, config hash), so a run already in the ledger (the same seed, setting, algorithm and
protocol: budget, evaluation trials and hyperparameters) is never trained again, and a campaign
spans invocations and machines. The ledger is ``<out>/ledgers/<table>.csv`` in the run records
format (:mod:`benchmark.reporting.records`), plus ``measurements`` (JSON of the spec's own
evaluations of the trained policy, :attr:`TableSpec.measure_run`; ``{}`` for most tables).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.reporting.records import ledger_keys, merge_records, read_ledger, records_from_store
from benchmark.run.config import RunSpec, load_run_config
from benchmark.studies.inputs import Run
from benchmark.studies.spec import Column, Setting


@dataclass(eq=False)
class PlannedRun:
    """One training run of a learned cell."""

    column: Column
    setting: Setting
    seed: int
    spec: RunSpec = field(repr=False)

    @property
    def key(self) -> tuple[str, str]:
        """(algorithm, config hash): the run's identity in the ledger."""
        return self.spec.algo_name, self.spec.config_hash()


def available(algorithm: str) -> bool:
    """True when ``algorithm`` is registered."""
    from baselines import algorithm_names

    return algorithm in algorithm_names()


def plan(run: Run, settings: list[Setting]) -> list[PlannedRun]:
    """Every run of every registered learned column at ``settings``, seeds in the budget's order."""
    planned = []
    for column in run.spec.learned_columns:
        if not available(column.algorithm):
            continue
        for setting in settings:
            for seed in run.budget.seeds:
                overrides = [*run.spec.learned_overrides(setting), f"seed={seed}"]
                overrides += [f"eval.trials={run.trials}", *run.budget.learned_overrides]
                spec = load_run_config(column.algorithm, run.spec.family, overrides)
                planned.append(PlannedRun(column, setting, seed, spec))
    return planned


def recorded(ledger: pd.DataFrame) -> dict[tuple[str, str], dict[str, Any]]:
    """The ledger's rows by (algorithm, config hash)."""
    rows = ledger.to_dict("records")
    return {(row["algorithm"], row["config_hash"]): row for row in rows}


def to_train(run: Run, ledger: pd.DataFrame) -> list[PlannedRun]:
    """The planned runs of the settings this invocation trains that the ledger lacks (each once)."""
    trained = [s for s in run.measured if s.name in run.budget.learned_settings]
    done, missing = ledger_keys(ledger), {}
    for planned in plan(run, trained):
        if planned.key not in done:
            missing.setdefault(planned.key, planned)
    return list(missing.values())


def train_missing(run: Run, path: Path, tracking_uri: str, experiment: str) -> pd.DataFrame:
    """Train every missing run, merge each into the ledger at ``path`` as it finishes; return the
    ledger.

    Args:
        run: the invocation.
        path: the ledger CSV.
        tracking_uri: MLflow store of the training runs.
        experiment: MLflow experiment of the training runs.
    """
    from benchmark.run.runner import train_and_evaluate

    ledger = read_ledger(path)
    missing = to_train(run, ledger)
    for planned in missing:
        summary = train_and_evaluate(planned.spec, tracking_uri, experiment, progress=False)
        frame = records_from_store(tracking_uri, experiment, {planned.key[1]})
        frame = frame[frame["run_id"] == summary["run_id"]].copy()
        measured = {}
        if run.spec.measure_run is not None:
            measured = run.spec.measure_run(run, planned.spec, summary["run_id"], tracking_uri)
        frame["measurements"] = json.dumps(measured, sort_keys=True)
        ledger = merge_records(path, frame)
    run.notes.append(
        f"Learned runs: {len(missing)} trained by this invocation; the ledger "
        f"`{path.parent.name}/{path.name}` of the output folder holds "
        f"{len(ledger)} run(s). A cell holds the runs of this command's configs for its setting "
        "(matched by config hash); those not trained by this invocation were trained by an "
        "earlier one, at the commit the cell names."
    )
    return ledger
