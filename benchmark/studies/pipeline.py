"""``metarl-bench reproduce TABLE``: one pipeline for every published table.

tune -> evaluate (the classical cells, :mod:`benchmark.studies.classical`) -> train (the learned
runs missing from the ledger, :mod:`benchmark.studies.ledger`; the cells over seeds,
:mod:`benchmark.studies.learned`) -> compare (published values, z, the spec's evidence and
footnotes, :mod:`benchmark.studies.compare`) -> render (``<out>/<table>.md`` and ``.csv``,
:mod:`benchmark.studies.render`) -> log (one MLflow run, :mod:`benchmark.studies.log`).

Results accumulate: the classical cells of settings this invocation does not evaluate are taken
from the existing ``<out>/<table>.csv``, and the learned cells always come from the ledger
``<out>/ledgers/<table>.csv``, so ``--settings`` and ``--columns`` add cells to the report.
"""

from __future__ import annotations

import multiprocessing
import re
import time
from pathlib import Path
from typing import Any

from benchmark.reporting.records import read_ledger
from benchmark.run.tracking import git_tags, resolve_tracking_uri
from benchmark.studies.cells import Results
from benchmark.studies.classical import cpu_seconds, run_classical
from benchmark.studies.compare import complete_diagnostics, complete_table, footnotes
from benchmark.studies.inputs import (
    COLUMN_CHOICES,
    Run,
    all_settings,
    load_budget,
    parse_settings,
    published_table,
)
from benchmark.studies.learned import learned_cells, learned_note
from benchmark.studies.ledger import train_missing
from benchmark.studies.log import log_to_mlflow
from benchmark.studies.render import format_markdown, read_report, write_csv
from benchmark.studies.spec import TableSpec
from tasks import require


def start_run(
    spec: TableSpec,
    budget: str,
    trials: int | None,
    settings: list[str] | None,
    seed: int,
    workers: int,
    columns: str = "all",
) -> Run:
    """The invocation, validated before anything is computed or written.

    Args:
        spec: the table.
        budget: a budget of the table's YAML.
        trials: held-out trials per cell; None uses the budget's.
        settings: setting names; None or empty for all.
        seed: seed of the tuning and evaluation streams.
        workers: processes for the classical cells.
        columns: ``all``, ``learned`` or ``classical``: what this invocation computes.
    """
    require(
        columns in COLUMN_CHOICES,
        f"unknown --columns '{columns}'; valid: {', '.join(COLUMN_CHOICES)}",
    )
    chosen = load_budget(spec, budget)
    trials = chosen.trials if trials is None else trials
    require(trials >= 1, f"--trials must be >= 1, got {trials}")
    require(workers >= 1, f"--workers must be >= 1, got {workers}")
    rows = parse_settings(spec, settings)
    return Run(spec, budget, chosen, trials, seed, workers, rows, columns)


def reproduce(
    spec: TableSpec,
    budget: str = "quick",
    trials: int | None = None,
    settings: list[str] | None = None,
    out: str | Path = "results",
    seed: int = 0,
    workers: int = 2,
    columns: str = "all",
    tracking_uri: str | None = None,
    experiment: str = "reproduce",
) -> dict[str, Any]:
    """Run the table, write ``<out>/<table>.md`` and ``.csv``, log them to MLflow.

    Args:
        spec: the table.
        budget: a budget of ``benchmark/configs/reproduce/<table>.yaml`` (smoke, quick, paper).
        trials: held-out trials per cell; None uses the budget's.
        settings: setting names (``10x5`` for Table 1, ``10`` for Table 2); None or empty for all.
        out: directory of the written table.
        seed: seed of the tuning and evaluation streams (and of the learned runs).
        workers: processes for the classical cells.
        columns: ``all``, ``learned`` (train the missing learned runs only) or ``classical``
            (evaluate the classical cells only); the other columns come from the existing report
            and ledger in ``out``.
        tracking_uri: MLflow store (default: sqlite in the working directory).
        experiment: MLflow experiment.

    Returns:
        the paths written, the MLflow run id, timings and the cells.
    """
    run = start_run(spec, budget, trials, settings, seed, workers, columns)
    uri = resolve_tracking_uri(tracking_uri)
    started = time.perf_counter()
    results, timings = measure(run, uri, experiment, Path(out))
    meta = {
        "command": command_line(run, settings),
        "cpu_count": multiprocessing.cpu_count(),
        "git_commit": git_tags()["git_commit"],
        **timings,
    }
    files = write_report(run, results, meta, Path(out))
    run_id = log_to_mlflow(run, results, meta, files, uri, experiment)
    return {
        "markdown": str(files[0]),
        "csv": str(files[1]),
        "run_id": run_id,
        **timings,
        "total_seconds": time.perf_counter() - started,
        "flagged": sum(cell.flagged for cell in results.table),
        "footnoted": len(footnotes(spec, results)[0]),
        "cells": [cell.record() for cell in [*results.table, *results.diagnostics]],
    }


def measure(
    run: Run, tracking_uri: str, experiment: str, out: Path
) -> tuple[Results, dict[str, float]]:
    """Tune and evaluate the classical cells, train the learned runs missing from the ledger,
    merge both with the earlier report in ``out``, compare with the published table and gather the
    spec's evidence; return the results and the classical cells' timings.

    Args:
        run: the invocation (its rows become the measured and the merged settings).
        tracking_uri: MLflow store of the learned runs.
        experiment: MLflow experiment of the learned runs.
        out: the report's folder (the earlier report and the ledger are read from it).
    """
    published = published_table(run.spec)
    started, cpu_started = time.perf_counter(), cpu_seconds()
    cells = run_classical(run) if run.evaluates else []
    timings = {
        "classical_seconds": time.perf_counter() - started,
        "classical_cpu_seconds": cpu_seconds() - cpu_started,
    }
    cells += merge_earlier(run, cells, out / f"{run.spec.stem}.csv")
    path = run.spec.ledger(out)
    ledger = train_missing(run, path, tracking_uri, experiment) if run.trains else read_ledger(path)
    algorithms = {column.algorithm: column for column in run.spec.learned_columns}
    run.notes += [learned_note(run, column) for column in algorithms.values()]
    cells += learned_cells(run, ledger)
    results = Results(
        complete_table(run, cells, published), complete_diagnostics(run, cells, published)
    )
    for evidence in run.spec.evidence:
        evidence(run, results)
    return results, timings


MADE_BY = "classical cells made by"
"""The note's words before the command that made carried classical cells (written and read back)."""


def merge_earlier(run: Run, cells: list, report: Path) -> list:
    """The earlier report's classical cells that this invocation did not measure; the run's rows
    become every setting of either, in the published order."""
    if not report.is_file():
        return []
    measured = {cell.key for cell in cells}
    rows, stored = read_report(run.spec, report)
    earlier = [cell for cell in stored if cell.key not in measured]
    names = {setting.name for setting in [*run.settings, *rows]}
    run.settings = [setting for setting in all_settings(run.spec) if setting.name in names]
    if earlier:
        found = {cell.setting.name for cell in earlier}
        rows = [setting.name for setting in run.settings if setting.name in found]
        origin = classical_origin(report.with_suffix(".md"))
        run.notes.append(
            f"Classical cells of {', '.join(rows)} (settings or columns this invocation did not "
            f"evaluate) are those of the earlier report `{report.name}` in the output folder, "
            "with its trials, seed and tuning" + (f" ({MADE_BY} {origin})." if origin else ".")
        )
    return earlier


def classical_origin(markdown: Path) -> str | None:
    """The command (with its budget, seed and commit) that made the classical cells of an earlier
    report: the one its notes carry forward, else its own ``Command:`` line unless that computed
    only the learned columns; None when unknown."""
    if not markdown.is_file():
        return None
    text = markdown.read_text()
    carried = re.search(MADE_BY + r" (`[^`]+` \([^)]*\))", text)
    if carried:
        return carried.group(1)
    own = re.search(r"^Command: (`[^`]+` \([^)]*\))", text, re.MULTILINE)
    return own.group(1) if own and "--columns learned" not in own.group(1) else None


def write_report(run: Run, results: Results, meta: dict[str, Any], folder: Path) -> list[Path]:
    """Write ``<folder>/<table>.md`` and ``.csv``; return both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    markdown, table_csv = folder / f"{run.spec.stem}.md", folder / f"{run.spec.stem}.csv"
    markdown.write_text(format_markdown(run, results, meta))
    write_csv(run.spec, results, table_csv)
    return [markdown, table_csv]


def command_line(run: Run, settings: list[str] | None) -> str:
    """The command that repeats this invocation."""
    parts = [f"metarl-bench reproduce {run.spec.name} --budget {run.budget_name}"]
    parts.append(f"--trials {run.trials}")
    if settings:
        parts.append("--settings " + " ".join(settings))
    parts.append(f"--seed {run.seed} --workers {run.workers} --columns {run.columns}")
    return " ".join(parts)
