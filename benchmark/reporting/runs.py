"""Which runs of an MLflow experiment a table or a ledger holds: FINISHED runs of algorithms and
strategies, one per run key.

If the experiment holds sweeps, the latest sweep's grid (its parent run's ``sweep/grid.json``)
selects one run per config hash, whichever invocation of the sweep produced it; otherwise the latest
run per (algorithm, setting, seed) is kept. A caller may name the config hashes instead.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient

from benchmark.run.tracking import GRID_ARTIFACT, ROLE
from tasks import ConfigError, require, setting_label

METRICS = {
    "eval/mean_total_reward": "total_reward",
    "eval/normalized_score": "normalized_score",
    "eval/regret": "regret",
    "eval/success_rate": "success_rate",
    "heldout/mean_total_reward": "heldout_total_reward",
    "heldout/normalized_score": "heldout_normalized_score",
    "heldout/success_rate": "heldout_success_rate",
}
"""The evaluation metrics a table summarises (MLflow key -> column); a run without one has NaN."""
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def open_store(tracking_uri: str) -> MlflowClient:
    """A client for an existing store (a missing sqlite file is an error, not a new store).

    Args:
        tracking_uri: the MLflow store.
    """
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        require(
            path.is_file(), f"no MLflow store at {path}; run a sweep first or pass --tracking-uri"
        )
    return MlflowClient(tracking_uri)


def latest_sweep_experiment(client: MlflowClient) -> str:
    """The experiment of the most recently started sweep in the store.

    Args:
        client: the tracking client.
    """
    experiments = client.search_experiments()
    ids = [e.experiment_id for e in experiments]
    runs = client.search_runs(
        ids, f"tags.`{ROLE}` = 'parent'", order_by=["attributes.start_time DESC"], max_results=1
    )
    names = ", ".join(sorted(e.name for e in experiments)) or "(none)"
    require(bool(runs), f"no sweep in this store; name one with --experiment: {names}")
    return client.get_experiment(runs[0].info.experiment_id).name


def read_experiment(
    client: MlflowClient,
    tracking_uri: str,
    experiment: str,
    config_hashes: set[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    """The FINISHED runs of ``experiment`` and the selected ones.

    Args:
        client: the tracking client.
        tracking_uri: the same store (for ``mlflow.search_runs``).
        experiment: an existing experiment name (else a ConfigError listing the existing ones).
        config_hashes: keep the runs of these config hashes (None: the latest sweep's grid).

    Returns:
        ``mlflow.search_runs``'s frame, :func:`select_runs`'s frame, and the latest sweep's parent
        run (None if the experiment has no sweep).
    """
    import mlflow

    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = ", ".join(sorted(e.name for e in client.search_experiments())) or "(none)"
        raise ConfigError(f"unknown experiment '{experiment}'; experiments: {names}")
    mlflow.set_tracking_uri(tracking_uri)
    raw = mlflow.search_runs(
        experiment_ids=[found.experiment_id], filter_string="attributes.status = 'FINISHED'"
    )
    parent = _latest_parent(client, found.experiment_id)
    grid = config_hashes if config_hashes is not None else _grid_hashes(client, parent)
    return raw, select_runs(raw, grid), parent


def select_runs(raw: pd.DataFrame, grid: set[str] | None) -> pd.DataFrame:
    """One row per run of the table, from ``mlflow.search_runs`` output.

    Args:
        raw: FINISHED runs (``tags.*``, ``params.*``, ``metrics.*`` columns).
        grid: config hashes to keep, one run each (None: keep the latest run per algorithm,
            setting and seed).
    """
    column = lambda name: raw[name] if name in raw else pd.Series(None, index=raw.index)  # noqa: E731
    keep = column("tags.algorithm").notna() & (column(f"tags.{ROLE}") != "parent")
    raw = raw[keep].sort_values("start_time") if len(raw) else raw
    runs = pd.DataFrame(
        {
            "run_id": raw["run_id"] if len(raw) else [],
            "algorithm": column("tags.algorithm")[raw.index],
            "kind": column("tags.kind")[raw.index].fillna("learned"),
            "task": column("tags.task")[raw.index],
            "setting": [
                setting_label(raw.at[i, "tags.task"], task_params(raw, i)) for i in raw.index
            ],
            "seed": pd.to_numeric(column("params.seed")[raw.index]).astype("Int64"),
            "config_hash": column("tags.config_hash")[raw.index],
            "trials": pd.to_numeric(column("params.eval.trials")[raw.index]),
            "tuned": [_tuned(raw, i) for i in raw.index],
        }
    )
    for source, target in METRICS.items():
        runs[target] = pd.to_numeric(column(f"metrics.{source}")[raw.index])
    if grid is not None:
        runs = runs[runs["config_hash"].isin(grid)].drop_duplicates("config_hash", keep="last")
    else:
        runs = runs.drop_duplicates(["algorithm", "setting", "seed"], keep="last")
    return runs.sort_values(["task", "setting", "algorithm", "seed"]).reset_index(drop=True)


def task_params(raw: pd.DataFrame, index: Any, prefix: str = "params.task.") -> dict[str, str]:
    """A run's parameters under ``prefix`` (the task setting), as MLflow stored them (text).

    Args:
        raw: ``mlflow.search_runs`` output.
        index: the run's row.
        prefix: ``params.task.`` (the family's) or ``params.eval.task.`` (held-out overrides).
    """
    present = {c[len(prefix) :]: raw.at[index, c] for c in raw.columns if c.startswith(prefix)}
    return {k: v for k, v in present.items() if isinstance(v, str)}


def _tuned(raw: pd.DataFrame, index: Any) -> str:
    values = task_params(raw, index, "params.tuned.")
    return " ".join(f"{k}={v}" for k, v in sorted(values.items()))


def _latest_parent(client: MlflowClient, experiment_id: str):
    runs = client.search_runs(
        [experiment_id],
        f"tags.`{ROLE}` = 'parent'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def _grid_hashes(client: MlflowClient, parent) -> set[str] | None:
    if parent is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(parent.info.run_id, GRID_ARTIFACT, tmp)
        return {entry["config_hash"] for entry in json.loads(Path(path).read_text())}
