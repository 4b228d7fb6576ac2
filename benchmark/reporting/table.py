"""``metarl-bench table``: read runs back from MLflow and compare algorithms and strategies.

1. ``mlflow.search_runs`` reads the FINISHED runs of an experiment. If the experiment holds sweeps,
   the latest sweep's grid (its parent run's ``sweep/grid.json``) selects one run per config hash,
   whichever invocation of the sweep produced it; otherwise the latest run per
   (algorithm, setting, seed) is kept.
2. The runs become a tidy long DataFrame: one row per (run, metric).
3. The summary, also long: per setting and algorithm, mean ± 95% CI over seeds of the total reward,
   normalised score and regret; across settings, the IQM of normalised scores and the probability
   of improvement over a baseline, with stratified-bootstrap CIs (:mod:`benchmark.reporting.stats`).
4. ``results/<name>.md`` and ``.csv``, the plots under ``results/<name>/`` (also logged to the
   sweep's parent run), and the table in the chosen format on stdout (or ``--out``).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient

from benchmark.reporting import stats
from benchmark.reporting.report import Report, render
from benchmark.run.tracking import GRID_ARTIFACT, ROLE, SWEEP
from tasks import TASKS, ConfigError, require

FORMATS = ("markdown", "csv", "latex", "json")
DEFAULT_BASELINE = "a2c"
METRICS = {
    "eval/mean_total_reward": "total_reward",
    "eval/normalized_score": "normalized_score",
    "eval/regret": "regret",
}
IQM, ALL_SETTINGS = "iqm_normalized_score", "all settings"
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def table_command(
    experiment: str | None,
    baseline: str | None,
    fmt: str,
    out: str | None,
    tracking_uri: str,
    results_dir: Path = Path("results"),
) -> int:
    """Build the report of an experiment, write results/<name>.{md,csv} and plots, print it.

    Args:
        experiment: the MLflow experiment (default: that of the latest sweep).
        baseline: the algorithm P(improvement) compares against (default ``a2c`` if present).
        fmt: ``markdown``, ``csv``, ``latex`` or ``json`` (stdout and ``--out``).
        out: also write the chosen format here.
        tracking_uri: the MLflow store.
        results_dir: where ``<name>.md``, ``<name>.csv`` and ``<name>/*.png`` go.
    """

    require(fmt in FORMATS, f"unknown format '{fmt}'; valid formats: {', '.join(FORMATS)}")
    client = open_store(tracking_uri)
    experiment = experiment or latest_sweep_experiment(client)
    report = build_report(client, tracking_uri, experiment, baseline)
    write_results(client, report, results_dir)
    text = render(report, fmt)
    print(text)
    if out:
        Path(out).write_text(text + "\n")
    return 0


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


def build_report(
    client: MlflowClient, tracking_uri: str, experiment: str, baseline: str | None
) -> Report:
    """Read, select and summarise the runs of ``experiment``.

    Args:
        client: the tracking client.
        tracking_uri: the same store (for ``mlflow.search_runs``).
        experiment: an existing experiment name (else a ConfigError listing the existing ones).
        baseline: the P(improvement) baseline; None means ``a2c`` where it has runs.
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
    runs = select_runs(raw, _grid_hashes(client, parent))
    require(not runs.empty, f"experiment '{experiment}' has no finished runs of algorithms yet")
    name = parent.data.tags.get(SWEEP, experiment) if parent else experiment
    report = Report(re.sub(r"[^\w.-]+", "_", name), experiment, runs, tidy_frame(runs), None)
    report.parent_id = parent.info.run_id if parent else None
    report.baseline = _choose_baseline(runs, baseline, report.notes)
    report.summary = summarise(report.tidy, report.baseline)
    report.trials = sorted({int(t) for t in runs["trials"].dropna()})
    return report


def select_runs(raw: pd.DataFrame, grid: set[str] | None) -> pd.DataFrame:
    """One row per run of the table, from ``mlflow.search_runs`` output.

    Args:
        raw: FINISHED runs (``tags.*``, ``params.*``, ``metrics.*`` columns).
        grid: config hashes of the latest sweep (None: keep the latest run per algorithm, setting
            and seed).
    """
    column = lambda name: raw[name] if name in raw else pd.Series(None, index=raw.index)  # noqa: E731
    keep = column("tags.algorithm").notna() & (column(f"tags.{ROLE}") != "parent")
    raw = raw[keep].sort_values("start_time")
    runs = pd.DataFrame(
        {
            "run_id": raw["run_id"],
            "algorithm": raw["tags.algorithm"],
            "kind": column("tags.kind")[raw.index].fillna("learned"),
            "task": raw["tags.task"],
            "setting": [_setting(raw, i) for i in raw.index],
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


def tidy_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """The tidy long frame: one row per (algorithm, kind, task, setting, seed, run, metric).

    Args:
        runs: one row per run, from :func:`select_runs`.
    """
    ids = ["algorithm", "kind", "task", "setting", "seed", "run_id"]
    tidy = runs.melt(id_vars=ids, value_vars=list(METRICS.values()), var_name="metric")
    return tidy.dropna(subset=["value"]).reset_index(drop=True)


def summarise(tidy: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """The long summary: per-setting means with t CIs, then IQM and P(improvement) across settings
    with bootstrap CIs and their caveats (``ci_note``,
    :func:`benchmark.reporting.stats.bootstrap_caveat`).

    Args:
        tidy: the tidy frame of :func:`tidy_frame`.
        baseline: the algorithm P(improvement) is computed against (None: no such rows).
    """
    rows = []
    keys = ["task", "setting", "algorithm", "kind", "metric"]
    for (task, setting, algorithm, kind, metric), group in tidy.groupby(keys, sort=True):
        mean, half = stats.mean_ci(group["value"].to_numpy())
        rows.append(_row("setting", task, setting, algorithm, kind, metric, len(group)))
        rows[-1].update(estimate=float(mean), ci_low=float(mean - half), ci_high=float(mean + half))
    scores = _scores_by_setting(tidy)
    for (algorithm, kind), by_setting in scores.items():
        count = sum(len(v) for v in by_setting.values())
        estimate, low, high = stats.iqm_ci(list(by_setting.values()))
        rows.append(
            _row(ALL_SETTINGS, "", f"{len(by_setting)} settings", algorithm, kind, IQM, count)
        )
        seeds = [len(v) for v in by_setting.values()]
        rows[-1].update(estimate=estimate, ci_low=low, ci_high=high, ci_method=stats.BOOTSTRAP)
        rows[-1]["ci_note"] = stats.bootstrap_caveat(seeds, low, high)
        base = next((v for (a, _), v in scores.items() if a == baseline), None)
        common = sorted(set(by_setting) & set(base or {}))
        if base is None or algorithm == baseline or not common:
            continue
        x, y = [by_setting[s] for s in common], [base[s] for s in common]
        estimate, low, high = stats.probability_of_improvement_ci(x, y)
        statistic = f"p_improvement_over_{baseline}"
        rows.append(
            _row(ALL_SETTINGS, "", f"{len(common)} settings", algorithm, kind, statistic, count)
        )
        rows[-1].update(estimate=estimate, ci_low=low, ci_high=high, ci_method=stats.BOOTSTRAP)
        seeds = [len(v) for v in (*x, *y)]
        rows[-1]["ci_note"] = stats.bootstrap_caveat(seeds, low, high)
    return pd.DataFrame(rows)


def _row(scope, task, setting, algorithm, kind, statistic, n) -> dict[str, Any]:
    return {
        "scope": scope,
        "task": task,
        "setting": setting,
        "algorithm": algorithm,
        "kind": kind,
        "statistic": statistic,
        "n": int(n),
        "ci_method": stats.T_INTERVAL,
        "ci_note": "",
    }


def _scores_by_setting(tidy: pd.DataFrame) -> dict[tuple[str, str], dict[str, list[float]]]:
    normalised = tidy[tidy["metric"] == "normalized_score"].sort_values(["setting", "seed"])
    scores: dict[tuple[str, str], dict[str, list[float]]] = {}
    for (algorithm, kind, setting), group in normalised.groupby(["algorithm", "kind", "setting"]):
        scores.setdefault((algorithm, kind), {})[setting] = group["value"].tolist()
    return scores


def _choose_baseline(runs: pd.DataFrame, baseline: str | None, notes: list[str]) -> str | None:
    present = sorted(runs["algorithm"].unique())
    if baseline is not None:
        require(
            baseline in present,
            f"baseline '{baseline}' has no runs in this experiment; "
            f"algorithms: {', '.join(present)}",
        )
        return baseline
    if DEFAULT_BASELINE in present:
        return DEFAULT_BASELINE
    notes.append(
        f"No probability of improvement: the default baseline '{DEFAULT_BASELINE}' has no runs "
        f"here (choose one with --baseline: {', '.join(present)})."
    )
    return None


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


def _setting(raw: pd.DataFrame, index: Any) -> str:
    task = raw.at[index, "tags.task"]
    prefix = "params.task."
    present = {c[len(prefix) :]: raw.at[index, c] for c in raw.columns if c.startswith(prefix)}
    present = {k: v for k, v in present.items() if isinstance(v, str)}
    order = list(TASKS[task].Config.__dataclass_fields__) if task in TASKS else sorted(present)
    return " ".join([task, *(f"{k}={present[k]}" for k in order if k in present)])


def _tuned(raw: pd.DataFrame, index: Any) -> str:
    prefix = "params.tuned."
    values = {c[len(prefix) :]: raw.at[index, c] for c in raw.columns if c.startswith(prefix)}
    return " ".join(f"{k}={v}" for k, v in sorted(values.items()) if isinstance(v, str))


def write_results(client: MlflowClient, report: Report, results_dir: Path) -> list[Path]:
    """Write ``<name>.md``, ``<name>.csv`` and the plots; log them to the sweep's parent run.

    Args:
        client: the tracking client.
        report: the built report.
        results_dir: the results folder (created).
    """
    from benchmark.reporting.plots import plot_sweep

    results_dir.mkdir(parents=True, exist_ok=True)
    report.plots = plot_sweep(client, report.runs, results_dir / report.name)
    markdown = results_dir / f"{report.name}.md"
    markdown.write_text(render(report, "markdown", plots_relative_to=results_dir) + "\n")
    table = results_dir / f"{report.name}.csv"
    table.write_text(render(report, "csv"))
    if report.parent_id:
        client.log_artifact(report.parent_id, str(markdown), "tables")
        client.log_artifact(report.parent_id, str(table), "tables")
        for plot in report.plots:
            client.log_artifact(report.parent_id, str(plot), "plots")
    return [markdown, table, *report.plots]
