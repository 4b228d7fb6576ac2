"""``metarl-bench table``: read runs back and compare algorithms and strategies.

1. The runs: the FINISHED runs of an MLflow experiment, selected by
   :mod:`benchmark.reporting.runs` (the latest sweep's grid, else the latest run per algorithm,
   setting and seed), or the rows of run-record ledgers (``--from``,
   :mod:`benchmark.reporting.records`), which need no MLflow store.
2. The runs become a tidy long DataFrame: one row per (run, metric).
3. The summary, also long: per setting and algorithm, mean ± 95% CI over seeds of the total reward,
   normalised score, regret (and success rate and held-out metrics where runs logged them); across
   settings, the IQM of normalised scores and the probability of improvement over a baseline, with
   stratified-bootstrap CIs (:mod:`benchmark.reporting.stats`).
4. From MLflow: ``results/<name>.md`` and ``.csv``, the plots under ``results/<name>/`` (also
   logged to the sweep's parent run), and ``--export-runs FILE`` merges the runs' records into a
   ledger. Always: the table in the chosen format on stdout (and ``--out``).
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient

from benchmark.reporting import stats
from benchmark.reporting.criteria import add_criteria
from benchmark.reporting.records import (
    merge_records,
    read_records,
    records_from_store,
    select_records,
)
from benchmark.reporting.references import NORMALISE_TO, has_revealed, with_revealed_references
from benchmark.reporting.report import ALL_SETTINGS, Report, render
from benchmark.reporting.runs import METRICS, latest_sweep_experiment, open_store, read_experiment
from benchmark.run.tracking import SWEEP
from tasks import ConfigError, require

FORMATS = ("markdown", "csv", "latex", "json")
DEFAULT_BASELINE = "a2c"
IQM = "iqm_normalized_score"


def table_command(
    experiment: str | None,
    baseline: str | None,
    fmt: str,
    out: str | None,
    tracking_uri: str,
    results_dir: Path = Path("results"),
    sources: list[str] | None = None,
    export_runs: str | None = None,
    normalise_to: str = "oracle",
    where: list[str] | None = None,
    criteria: bool = False,
) -> int:
    """Build the report of an experiment (or of run records), write it, print it.

    Args:
        experiment: the MLflow experiment (default: that of the latest sweep).
        baseline: the algorithm P(improvement) compares against (default ``a2c`` if present).
        fmt: ``markdown``, ``csv``, ``latex`` or ``json`` (stdout and ``--out``).
        out: also write the chosen format here.
        tracking_uri: the MLflow store (unused with ``sources``).
        results_dir: where ``<name>.md``, ``<name>.csv`` and ``<name>/*.png`` go (MLflow only).
        sources: run-record CSVs or globs to read instead of MLflow (``--from``).
        export_runs: a ledger CSV the run records (of the experiment, or of ``sources``) are
            merged into.
        normalise_to: the upper reference of normalised scores
            (:data:`benchmark.reporting.references.NORMALISE_TO`).
        where: ``KEY=VALUE`` conditions that select the runs of the table and of the export
            (:func:`benchmark.reporting.records.select_records`); the table is then built from
            the selected records.
        criteria: append the reference criteria (:mod:`benchmark.reporting.criteria`).
    """
    require(fmt in FORMATS, f"unknown format '{fmt}'; valid formats: {', '.join(FORMATS)}")
    require(
        normalise_to in NORMALISE_TO,
        f"unknown --normalise-to '{normalise_to}'; valid: {', '.join(NORMALISE_TO)}",
    )
    records = None
    if sources:
        require(experiment is None, "table --from reads run records; --experiment needs a store")
        records = select_records(read_records(sources), where or [])
        report = report_from_records(records, baseline, sources, normalise_to)
    elif where:
        experiment = experiment or latest_sweep_experiment(open_store(tracking_uri))
        records = select_records(records_from_store(tracking_uri, experiment), where)
        origin = f"MLflow experiment `{experiment}`"
        report = report_from_records(records, baseline, [experiment], normalise_to, origin)
        report.command = f"metarl-bench table --experiment {shlex.quote(experiment)}"
    if where:
        selection = " ".join(shlex.quote(w) for w in where)
        report.command += f" --where {selection}"
    if records is not None:
        if criteria:
            _add_criteria(report, records, normalise_to)
    else:
        client = open_store(tracking_uri)
        experiment = experiment or latest_sweep_experiment(client)
        report = build_report(client, tracking_uri, experiment, baseline, normalise_to)
        if criteria:  # the per-episode returns are in the runs' records, not in report.runs
            records = records_from_store(tracking_uri, experiment)
            _add_criteria(report, records, normalise_to)
        write_results(client, report, results_dir)
    if export_runs:
        if records is None:
            records = records_from_store(tracking_uri, experiment)
        merged = merge_records(export_runs, records)
        print(
            f"{len(records)} run records merged into {export_runs} ({len(merged)} rows)",
            file=sys.stderr,
        )
    text = render(report, fmt)
    print(text)
    if out:
        Path(out).write_text(text + "\n")
    return 0


def _add_criteria(report: Report, records: pd.DataFrame, normalise_to: str) -> None:
    """Add the reference criteria of ``records`` (which carry the per-episode returns) to
    ``report``, normalised as the report is; refused where no run is learned."""
    learned = report.runs["kind"] == "learned"
    present = ", ".join(sorted(report.runs["algorithm"].unique()))
    require(
        bool(learned.any()),
        f"--criteria checks learned runs (rl2, lstm-a2c, lstm-a3c, a2c, plug-ins) and these runs "
        f"have none (algorithms: {present}); drop --criteria or select learned runs",
    )
    add_criteria(report, with_revealed_references(records, normalise_to)[0])


def build_report(
    client: MlflowClient,
    tracking_uri: str,
    experiment: str,
    baseline: str | None,
    normalise_to: str = "oracle",
) -> Report:
    """Read, select and summarise the runs of ``experiment``.

    Args:
        client: the tracking client.
        tracking_uri: the same store (for ``mlflow.search_runs``).
        experiment: an existing experiment name (else a ConfigError listing the existing ones).
        baseline: the P(improvement) baseline; None means ``a2c`` where it has runs.
        normalise_to: the upper reference of normalised scores (``oracle`` or ``revealed``).
    """
    _, runs, parent = read_experiment(client, tracking_uri, experiment)
    require(not runs.empty, f"experiment '{experiment}' has no finished runs of algorithms yet")
    if has_revealed(runs):  # the same runs as records, which carry each run's random reference
        runs = records_from_store(tracking_uri, experiment)
    name = parent.data.tags.get(SWEEP, experiment) if parent else experiment
    origin = f"MLflow experiment `{experiment}`"
    report = summarised_report(name, experiment, runs, baseline, origin, normalise_to=normalise_to)
    report.command = f"metarl-bench table --experiment {shlex.quote(experiment)}"
    report.parent_id = parent.info.run_id if parent else None
    return report


def report_from_records(
    records: pd.DataFrame,
    baseline: str | None,
    sources: list[str],
    normalise_to: str = "oracle",
    origin: str | None = None,
) -> Report:
    """The report of run records (ledger rows), summarised as an experiment's runs are.

    Args:
        records: :func:`benchmark.reporting.records.read_records` output.
        baseline: the P(improvement) baseline; None means ``a2c`` where it has runs.
        sources: the files or globs the records came from (named in the report).
        normalise_to: the upper reference of normalised scores (``oracle`` or ``revealed``).
        origin: the sentence's subject naming where the records came from; None: the files.
    """
    require(not records.empty, f"the run records {' '.join(sources)} hold no runs")
    twins = records[records.duplicated(["algorithm", "setting", "seed"], keep=False)]
    if len(twins):  # two configs of one run would be averaged as two seeds
        first = twins.iloc[0]
        same = twins[
            (twins["algorithm"] == first["algorithm"])
            & (twins["setting"] == first["setting"])
            & (twins["seed"] == first["seed"])
        ]
        raise ConfigError(
            f"the run records {' '.join(sources)} hold {len(same)} runs of {first['algorithm']} "
            f"on {first['setting']}, seed {first['seed']} (config hashes "
            f"{', '.join(sorted(same['config_hash']))}; {len(twins)} such rows in all): select "
            "one config with --where config_hash=..., or remove the others from the ledger"
        )
    name = "_".join(_source_name(Path(source)) for source in sources)
    origin = origin or "Run records " + ", ".join(f"`{s}`" for s in sources)
    report = summarised_report(
        name, "run records", records, baseline, origin, normalise_to=normalise_to
    )
    report.command = "metarl-bench table --from " + " ".join(shlex.quote(s) for s in sources)
    return report


def _source_name(source: Path) -> str:
    """A records file's stem; for a glob, its folder and the stem's literal part
    (``results/reference/*.csv`` -> ``reference``)."""
    literal = re.sub(r"[*?\[\]]", "", source.stem).strip("_-.")
    if literal == source.stem:
        return literal
    return "-".join(part for part in (source.parent.name, literal) if part) or "records"


def summarised_report(
    name: str,
    experiment: str,
    runs: pd.DataFrame,
    baseline: str | None,
    origin: str,
    with_baseline: bool = True,
    normalise_to: str = "oracle",
) -> Report:
    """A :class:`Report` of ``runs`` with its tidy frame, baseline and summary.

    Args:
        name: the report's name (``results/<name>.md``).
        experiment: where the runs come from (an experiment name, or "run records").
        runs: one row per run (:func:`benchmark.reporting.runs.select_runs` columns at least).
        baseline: the P(improvement) baseline; None means ``a2c`` where it has runs.
        origin: the sentence's subject naming the runs' source in markdown.
        with_baseline: False: no P(improvement) over one baseline (a caller adds its own).
        normalise_to: the upper reference of normalised scores: ``oracle`` (the revealed-task
            reference only where the oracle is NaN) or ``revealed``
            (:mod:`benchmark.reporting.references`).
    """
    runs, methods = with_revealed_references(runs, normalise_to)
    report = Report(re.sub(r"[^\w.-]+", "_", name), experiment, runs, tidy_frame(runs), None)
    report.methods += methods
    report.origin = origin
    if with_baseline:
        report.baseline = _choose_baseline(runs, baseline, report.notes)
    report.summary = summarise(report.tidy, report.baseline)
    report.trials = sorted({int(t) for t in runs["trials"].dropna()})
    return report


def tidy_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """The tidy long frame: one row per (algorithm, kind, task, setting, seed, run, metric).

    Args:
        runs: one row per run, from :func:`select_runs`.
    """
    ids = ["algorithm", "kind", "task", "setting", "seed", "run_id"]
    metrics = [m for m in METRICS.values() if m in runs.columns]
    tidy = runs.melt(id_vars=ids, value_vars=metrics, var_name="metric")
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
    markdown, table = write_tables(report, results_dir)
    if report.parent_id:
        client.log_artifact(report.parent_id, str(markdown), "tables")
        client.log_artifact(report.parent_id, str(table), "tables")
        for plot in report.plots:
            client.log_artifact(report.parent_id, str(plot), "plots")
    return [markdown, table, *report.plots]


def write_tables(report: Report, results_dir: Path) -> list[Path]:
    """Write ``<name>.md`` (linking ``report.plots``) and ``<name>.csv`` into ``results_dir``.

    Args:
        report: the built report (its ``command`` is named in the markdown).
        results_dir: the results folder (created).
    """
    results_dir.mkdir(parents=True, exist_ok=True)
    markdown = results_dir / f"{report.name}.md"
    markdown.write_text(render(report, "markdown", plots_relative_to=results_dir) + "\n")
    table = results_dir / f"{report.name}.csv"
    table.write_text(render(report, "csv"))
    return [markdown, table]
