"""The report of a study: Markdown (comparison, learned, rescaled and tuned tables, notes) and a
tidy CSV, which :func:`read_report` reads back (an invocation merges its new cells into it).

Each comparison cell reads ``published · ours ± SE · z``; ⚠ marks |z| > 3 and ``[n]`` a footnote.
A learned cell adds its number of seeds (``n=3``); the "Learned columns" table gives its 95% CI
over seeds, the selected seed's score, env steps, wall and CPU time and commit.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from benchmark.run.tuning import grid_of
from benchmark.studies.cells import FLAG_Z, Cell, Results
from benchmark.studies.compare import footnotes, reference_factors
from benchmark.studies.inputs import Run, all_settings
from benchmark.studies.spec import Setting, TableSpec

CELL_FIELDS = ["column", "strategy", "published", "mean", "stderr", "trials"]
RESULT_FIELDS = ["z", "flagged", "tuned", "seconds", "run_id", "note", "footnote"]
LEARNED_FIELDS = ["seeds", "ci95", "trial_stderr", "selected_seed", "selected_mean"]
LEARNED_FIELDS += ["selected_stderr", "selected_z", "env_steps", "cpu_seconds", "commit"]
RESCALED_FIELDS = ["vs_random", "vs_random_se", "random_published"]
RESCALED_DERIVED = ["rescaled", "rescaled_se", "rescaled_z"]


def csv_fields(spec: TableSpec) -> list[str]:
    """The CSV's columns: the setting (its name only where it has several parameters), the cell,
    the mean total reward where the score is normalised, and the rescaled values where rescaled."""
    params = [param for _, param in spec.setting_params]
    fields = (["setting"] if len(params) > 1 else []) + params + CELL_FIELDS
    fields += (["total_reward"] if spec.normalised else []) + RESULT_FIELDS + LEARNED_FIELDS
    return fields + (RESCALED_FIELDS + RESCALED_DERIVED if spec.rescale_by else [])


def write_csv(spec: TableSpec, results: Results, path: Path) -> None:
    """One row per cell (tidy format), diagnostics included, each with its footnote's text; z
    rounded to 3 decimals, rescaled values to 5.

    Args:
        spec: the table.
        results: the cells.
        path: the CSV file to write.
    """
    fields = csv_fields(spec)
    refs, texts = footnotes(spec, results)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        for cell in [*results.table, *results.diagnostics]:
            row = {key: value for key, value in cell.record().items() if key in fields}
            row["tuned"] = ";".join(f"{k}={v}" for k, v in cell.tuned.items())
            row["z"] = "" if cell.z is None else round(cell.z, 3)
            row["footnote"] = texts[refs[cell.key] - 1] if cell.key in refs else ""
            for key in RESCALED_DERIVED:
                if key in fields:
                    row[key] = "" if row[key] is None else round(row[key], 5)
            writer.writerow(row)


def read_report(spec: TableSpec, path: Path) -> tuple[list[Setting], list[Cell]]:
    """The rows of a report's CSV written by :func:`write_csv`, and its measured classical cells
    (diagnostics included).

    Args:
        spec: the table.
        path: the CSV.
    """
    strategies = {column.name: column for column in spec.classical_columns}
    settings = {setting.name: setting for setting in all_settings(spec)}
    rows, cells = {}, []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            params = {param: row[param] for _, param in spec.setting_params}
            setting = settings[spec.setting_name.format(**params)]
            rows[setting.name] = setting
            column = strategies.get(row["column"])
            if column is None or not row["mean"]:
                continue
            cell = Cell(
                setting, column.name, column.strategy, mean=float(row["mean"]),
                stderr=_float(row["stderr"]), trials=int(row["trials"]),
                total_reward=_float(row.get("total_reward", row["mean"])),
                tuned=_tuned(row["tuned"]), seconds=_float(row["seconds"]) or 0.0,
                note=row["note"], vs_random=_float(row.get("vs_random", "")),
                vs_random_se=_float(row.get("vs_random_se", "")), footnote=row.get("footnote", ""),
            )  # fmt: skip
            cells.append(cell)
    return list(rows.values()), cells


def _float(text: str) -> float | None:
    return float(text) if text else None


def _tuned(text: str) -> dict[str, Any]:
    """``c=0.1;samples=3`` as ``{"c": 0.1, "samples": 3}`` (numbers as numbers)."""
    values = {}
    for item in filter(None, text.split(";")):
        key, value = item.split("=", 1)
        number = float(value)
        values[key] = int(number) if number.is_integer() and "." not in value else number
    return values


def format_cell(spec: TableSpec, cell: Cell, ref: int | None) -> str:
    """``published · ours ± SE · z`` (⚠ when flagged, [n] for a footnote)."""
    marks = (" ⚠" if cell.flagged else "") + (f" [{ref}]" if ref else "")
    published = published_text(spec, cell)
    if cell.mean is None:
        return f"{published} · {cell.note}{marks}"
    z = "" if cell.z is None else f" · {cell.z:+.1f}"
    seeds = f" (n={len(cell.seeds)})" if cell.seeds else ""
    digits = spec.our_digits
    return f"{published} · {cell.mean:.{digits}f} ± {cell.stderr:.{digits}f}{seeds}{z}{marks}"


def published_text(spec: TableSpec, cell: Cell) -> str:
    """The published value (with its SE where the paper printed one), or "—"."""
    if cell.published is None:
        return "—"
    digits = spec.published_digits
    se = "" if cell.published_se is None else f" ± {cell.published_se:.{digits}f}"
    return f"{cell.published:.{digits}f}{se}"


def format_rescaled(cell: Cell) -> str:
    """``rescaled ± SE · z`` (⚠ when |z| > 3; no z where unpublished), or "—" without a value."""
    if cell.rescaled is None or cell.rescaled_se is None:
        return "—"
    text = f"{cell.rescaled:.3f} ± {cell.rescaled_se:.3f}"
    if cell.rescaled_z is None:
        return text
    mark = " ⚠" if abs(cell.rescaled_z) > FLAG_Z else ""
    return f"{text} · {cell.rescaled_z:+.1f}{mark}"


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
    columns = [c for c in spec.columns if c.name != reference]
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


def learned_section(run: Run, results: Results) -> list[str]:
    """The "Learned columns" table: per learned cell with runs, the mean over seeds with its 95%
    CI, the selected seed's score, env steps, wall and CPU seconds and commit."""
    spec, digits = run.spec, run.spec.our_digits
    cells = [cell for cell in results.table if cell.seeds]
    if not cells:
        return []
    z = spec.comparable
    lines = [
        "",
        "## Learned columns",
        "",
        "Mean over seeds ± 95% Student-t CI (n seeds); the selection rule's seed (best training "
        "return, never the held-out trials) and its held-out score ± SE over trials"
        + ("; z against the published value." if z else "."),
        "",
        "| setting | column | published | n (seeds) | mean ± 95% CI |"
        + (" z |" if z else "")
        + " selected seed: score ± SE |"
        + (" z |" if z else "")
        + " env steps per run | wall s (all seeds) | CPU s (all seeds) | commit |",
        "|" + "---|" * (10 + 2 * z),
    ]
    for cell in cells:
        published = published_text(spec, cell)
        ci = "n/a" if cell.ci95 is None else f"{cell.ci95:.{digits}f}"
        selected = "—"
        if cell.selected_seed is not None:
            selected = f"{cell.selected_seed}: {cell.selected_mean:.{digits}f} ± "
            selected += f"{cell.selected_stderr:.{digits}f}"
        texts = [cell.setting.name, cell.column, published]
        texts += [f"{len(cell.seeds)} ({' '.join(map(str, cell.seeds))})"]
        texts += [f"{cell.mean:.{digits}f} ± {ci}"] + ([_signed(cell.z)] if z else [])
        texts += [selected] + ([_signed(cell.selected_z)] if z else [])
        texts += [f"{cell.env_steps:,}", f"{cell.seconds:.0f}", f"{cell.cpu_seconds:.0f}"]
        lines.append("| " + " | ".join([*texts, cell.commit]) + " |")
    return lines


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1f}"


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
    lines += learned_section(run, results)
    lines += rescaled_section(run, results) if spec.rescale_by else []
    lines += tuned_section(run, results) if spec.classical_columns else []
    for section in spec.sections:
        lines += section(run, results)
    lines += ["", "## Notes", ""]
    lines += [f"[{n}] {text}" for n, text in enumerate(texts, 1)]
    lines += [""] if texts else []
    lines += [f"- {note}" for note in (*spec.notes, *run.notes)]
    return "\n".join(lines) + "\n"


def _tuning_text(run: Run, own: str) -> str:
    """The intro's clause on who tuned the classical cells: this invocation, or the earlier report
    whose cells it carries."""
    if not run.spec.classical_columns:
        return "."
    if not run.evaluates:
        return "; the classical cells and their tuning are those of the earlier report (Notes)."
    return (
        f"; hyperparameters tuned on the separate `tune` stream ({run.budget.tune_trials} trials "
        f"per grid value{own})."
    )


def _intro(run: Run, meta: dict[str, Any]) -> list[str]:
    spec, budget = run.spec, run.budget
    columns = {c.strategy: c.name for c in reversed(spec.classical_columns)}
    own = "".join(f", {columns[s]} {n}" for s, n in budget.strategy_tune_trials.items())
    lines = [
        f"Command: `{meta['command']}` (budget {run.budget_name}, seed {run.seed}, "
        f"git {meta['git_commit'][:10]}).",
        f"Ours: {spec.score_text} over {run.trials} held-out trials per cell (`test` stream)"
        + _tuning_text(run, own),
    ]
    if spec.classical_columns and run.evaluates:
        lines.append(
            f"Classical cells, tuning included: {meta['classical_seconds']:.1f} s wall time with "
            f"{run.workers} worker process(es) on {meta['cpu_count']} CPU cores "
            f"({meta['classical_cpu_seconds']:.1f} CPU seconds in all)."
        )
    lines += [
        "Learned cells: the mean over the runs of the budget's seeds ± the standard error over "
        "seeds (n=seeds; one seed: its standard error over trials).",
        "",
    ]
    if not spec.comparable:
        return lines + [
            "Each cell: published · ours ± SE. The published numbers come from another task, so "
            "no z is computed: compare the shape."
        ]
    return lines + [
        "Each cell: published · ours ± SE · z, the difference in standard errors (ours, the "
        "published 1000-trial SE estimated from our per-trial spread, and the published rounding "
        f"to {1 / 10**spec.published_digits:g}). ⚠ marks |z| > 3."
    ]
