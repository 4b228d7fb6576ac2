"""A study's MLflow run: the invocation as params, every cell as metrics, the report as artifacts.

The experiment is opened with :func:`benchmark.run.tracking.ensure_experiment`, so it carries the
suite's experiment-kind tag like every other experiment the suite creates.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from benchmark.run.tracking import ensure_experiment, git_tags
from benchmark.studies.cells import Results
from benchmark.studies.inputs import Run

BATCH = 100
"""Params per ``log_batch`` call (MLflow's limit)."""


def log_to_mlflow(
    run: Run,
    results: Results,
    meta: dict[str, Any],
    files: list[Path],
    tracking_uri: str,
    experiment: str,
) -> str:
    """Record the table as one MLflow run and return its id.

    Args:
        run: the invocation.
        results: the cells (the table's, not the diagnostics').
        meta: the invocation's timings (``classical_seconds``, ``classical_cpu_seconds``).
        files: the report's files, logged as artifacts.
        tracking_uri: the MLflow store.
        experiment: the MLflow experiment.
    """
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment_id = ensure_experiment(tracking_uri, experiment)
    tags = {**git_tags(), "table": run.spec.name, "budget": run.budget_name}
    run_id = client.create_run(experiment_id, run_name=run.spec.name, tags=tags).info.run_id
    stamp = int(time.time() * 1000)
    timings = ("classical_seconds", "classical_cpu_seconds")
    metrics = [Metric(key, meta[key], stamp, 0) for key in timings]
    params = [Param(key, str(value)) for key, value in invocation_params(run).items()]
    for cell in results.table:
        prefix = metric_name(f"{cell.setting.name}/{cell.column}")
        values = {"mean": cell.mean, "stderr": cell.stderr, "z": cell.z}
        values["rescaled_z"] = cell.rescaled_z
        metrics += [
            Metric(f"{prefix}/{key}", value, stamp, 0)
            for key, value in values.items()
            if value is not None
        ]
        params += [Param(f"{prefix}/{key}", str(value)) for key, value in cell.tuned.items()]
    for start in range(0, len(params), BATCH):
        client.log_batch(run_id, params=params[start : start + BATCH])
    client.log_batch(run_id, metrics=metrics)
    for path in files:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED")
    return run_id


def metric_name(text: str) -> str:
    """``text`` with each character MLflow refuses in a metric or param name (``%``) as ``_``."""
    return re.sub(r"[^\w\-. :/]", "_", text)


def invocation_params(run: Run) -> dict[str, Any]:
    """The invocation as MLflow params: budget, trials, seed, settings, tuning trials, workers."""
    budget = run.budget
    params = {
        "budget": run.budget_name,
        "trials": run.trials,
        "seed": run.seed,
        "settings": " ".join(setting.name for setting in run.settings),
        "tune_trials": budget.tune_trials,
    }
    params |= {f"{s}_tune_trials": n for s, n in budget.strategy_tune_trials.items()}
    return params | {"workers": run.workers}
