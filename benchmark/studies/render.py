"""The report of a study: Markdown (comparison, rescaled and tuned tables, notes) and a tidy CSV.

Each comparison cell reads ``published · ours ± SE · z``; ⚠ marks |z| > 3 and ``[n]`` a footnote.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from benchmark.run.tuning import grid_of
from benchmark.studies.cells import FLAG_Z, Cell, Results
from benchmark.studies.compare import footnotes, reference_factors
from benchmark.studies.inputs import Run
from benchmark.studies.spec import Setting, TableSpec

CELL_FIELDS = ["column", "strategy", "published", "mean", "stderr", "trials"]
RESULT_FIELDS = ["z", "flagged", "tuned", "seconds", "run_id", "note"]
RESCALED_FIELDS = ["vs_random", "vs_random_se", "random_published"]
RESCALED_DERIVED = ["rescaled", "rescaled_se", "rescaled_z"]


def csv_fields(spec: TableSpec) -> list[str]:
    """The CSV's columns: the setting (its name only where it has several parameters), the cell,
    the mean total reward where the score is normalised, and the rescaled values where rescaled."""
    params = [param for _, param in spec.setting_params]
    fields = (["setting"] if len(params) > 1 else []) + params + CELL_FIELDS
    fields += (["total_reward"] if spec.normalised else []) + RESULT_FIELDS
    return fields + (RESCALED_FIELDS + RESCALED_DERIVED if spec.rescale_by else [])


def write_csv(spec: TableSpec, cells: list[Cell], path: Path) -> None:
    """One row per cell (tidy format); z rounded to 3 decimals, rescaled values to 5.

    Args:
        spec: the table.
        cells: the cells, diagnostics included.
        path: the CSV file to write.
    """
    fields = csv_fields(spec)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        for cell in cells:
            row = {key: value for key, value in cell.record().items() if key in fields}
            row["tuned"] = ";".join(f"{k}={v}" for k, v in cell.tuned.items())
            row["z"] = "" if cell.z is None else round(cell.z, 3)
            for key in RESCALED_DERIVED:
                if key in fields:
                    row[key] = "" if row[key] is None else round(row[key], 5)
            writer.writerow(row)


def format_cell(spec: TableSpec, cell: Cell, ref: int | None) -> str:
    """``published · ours ± SE · z`` (⚠ when flagged, [n] for a footnote)."""
    marks = (" ⚠" if cell.flagged else "") + (f" [{ref}]" if ref else "")
    published = "—" if cell.published is None else f"{cell.published:.{spec.published_digits}f}"
    if cell.mean is None:
        return f"{published} · {cell.note}{marks}"
    z = "" if cell.z is None else f" · {cell.z:+.1f}"
    digits = spec.our_digits
    return f"{published} · {cell.mean:.{digits}f} ± {cell.stderr:.{digits}f}{z}{marks}"


def format_rescaled(cell: Cell) -> str:
    """``rescaled ± SE · z`` (⚠ when |z| > 3), or "—" when the cell has no rescaled value."""
    if cell.rescaled_z is None:
        return "—"
    mark = " ⚠" if abs(cell.rescaled_z) > FLAG_Z else ""
    return f"{cell.rescaled:.3f} ± {cell.rescaled_se:.3f} · {cell.rescaled_z:+.1f}{mark}"


def _header(setting: Setting, names: list[str]) -> list[str]:
    labels = [param for param, _ in setting.params] + names
    return ["| " + " | ".join(labels) + " |", "|" + "---|" * len(labels)]


def _row(setting: Setting, texts: list[str]) -> str:
    return "| " + " | ".join([*(str(v) for _, v in setting.params), *texts]) + " |"


def comparison_section(run: Run, results: Results) -> list[str]:
    """The comparison table: one row per setting, one cell per published column."""
    refs, _ = footnotes(run.spec, results)
    by_key = {cell.key: cell for cell in results.table}
    columns = [column.name for column in run.spec.columns]
    lines = _header(run.settings[0], columns)
    for setting in run.settings:
        cells = [by_key[(setting.name, column)] for column in columns]
        lines.append(_row(setting, [format_cell(run.spec, c, refs.get(c.key)) for c in cells]))
    return lines


def rescaled_section(run: Run, results: Results) -> list[str]:
    """The "Rescaled by the Random column" table: rescaled value, SE and z of every cell."""
    spec, reference = run.spec, run.spec.rescale_by
    factors = reference_factors(results.table, reference)
    columns = [c for c in spec.columns if c.strategy is not None and c.name != reference]
    columns += spec.diagnostics
    names = [c.name + (f" (vs. {c.compares})" if c.compares else "") for c in columns]
    by_key = {cell.key: cell for cell in [*results.table, *results.diagnostics]}
    lines = [
        "",
        f"## Rescaled by the {reference} column",
        "",
        "Each cell: ours divided by the random policy's expected total on the same trials, times "
        f"the row's published {reference} value · z against the published value (the published "
        f"{reference} value's own uncertainty included). ⚠ marks |z| > 3. Factor: our "
        f"{reference} / published {reference}.",
        "",
        *_header(run.settings[0], ["factor", *names]),
    ]
    for setting in run.settings:
        factor = f"{factors[setting.name]:.3f}" if setting.name in factors else "—"
        cells = [by_key.get((setting.name, c.name)) for c in columns]
        lines.append(_row(setting, [factor] + [format_rescaled(c) if c else "—" for c in cells]))
    return lines


def tuned_section(run: Run, results: Results) -> list[str]:
    """The tuned hyperparameters: one row per setting, one cell per column with a grid."""
    grids = {c.name: grid_of(c.strategy, run.spec.family) for c in run.spec.classical_columns}
    tuned = [name for name, grid in grids.items() if grid is not None]
    by_key = {cell.key: cell for cell in [*results.table, *results.diagnostics]}
    lines = ["", "## Tuned hyperparameters (chosen on the `tune` stream)", ""]
    lines += _header(run.settings[0], [f"{name} {grids[name].param}" for name in tuned])
    for setting in run.settings:
        found = [by_key.get((setting.name, name)) for name in tuned]
        values = [", ".join(str(v) for v in c.tuned.values()) if c else "" for c in found]
        lines.append(_row(setting, [value or "-" for value in values]))
    return lines


def format_markdown(run: Run, results: Results, meta: dict[str, Any]) -> str:
    """The Markdown report: comparison, rescaled (where the spec rescales) and tuned tables, notes.

    Args:
        run: the invocation.
        results: the cells and the footnotes' evidence.
        meta: the invocation's command, commit, timings and machine (see the pipeline).
    """
    spec = run.spec
    _, texts = footnotes(spec, results)
    lines = [f"# {spec.title}: published vs. metarl-bench", "", *_intro(run, meta), ""]
    lines += comparison_section(run, results)
    lines += rescaled_section(run, results) if spec.rescale_by else []
    lines += tuned_section(run, results)
    lines += ["", "## Notes", ""]
    lines += [f"[{n}] {text}" for n, text in enumerate(texts, 1)]
    lines += [""] if texts else []
    lines += [f"- {note}" for note in (*spec.notes, *run.notes)]
    return "\n".join(lines) + "\n"


def _intro(run: Run, meta: dict[str, Any]) -> list[str]:
    spec, budget = run.spec, run.budget
    columns = {c.strategy: c.name for c in reversed(spec.classical_columns)}
    own = "".join(f", {columns[s]} {n}" for s, n in budget.strategy_tune_trials.items())
    return [
        f"Command: `{meta['command']}` (budget {run.budget_name}, seed {run.seed}, "
        f"git {meta['git_commit'][:10]}).",
        f"Ours: {spec.score_text} over {run.trials} held-out trials per cell (`test` stream); "
        f"hyperparameters tuned on the separate `tune` stream ({budget.tune_trials} trials per "
        f"grid value{own}).",
        f"Classical cells, tuning included: {meta['classical_seconds']:.1f} s wall time with "
        f"{run.workers} worker process(es) on {meta['cpu_count']} CPU cores "
        f"({meta['classical_cpu_seconds']:.1f} CPU seconds in all).",
        "",
        "Each cell: published · ours ± SE · z, the difference in standard errors (ours, the "
        "published 1000-trial SE estimated from our per-trial spread, and the published rounding "
        f"to {1 / 10**spec.published_digits:g}). ⚠ marks |z| > 3.",
    ]
