"""A report of an experiment's runs (:class:`Report`), rendered as markdown, csv, LaTeX or JSON.

The csv and JSON forms are the long summary itself (one row per statistic, with n, the estimate,
the CI bounds and the CI method); markdown and LaTeX show one table per task setting and one across
settings, and state n and the CI methods.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmark.reporting import stats

ALL_SETTINGS = "all settings"
"""The ``scope`` of the summary rows across settings (IQM, P(improvement))."""


@dataclass
class Report:
    """Everything a table is rendered from."""

    name: str
    experiment: str
    runs: pd.DataFrame = field(repr=False)
    """One row per selected run (run_id, algorithm, kind, task, setting, seed, tuned, metrics)."""
    tidy: pd.DataFrame = field(repr=False)
    """One row per (run, metric)."""
    summary: pd.DataFrame = field(repr=False)
    """One row per (scope, setting, algorithm, statistic): n, estimate, ci_low, ci_high, the CI
    method and its caveat (ci_note, "" when none applies)."""
    baseline: str | None = None
    notes: list[str] = field(default_factory=list)
    parent_id: str | None = None
    trials: list[int] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    origin: str = ""
    """Where the runs come from, as the markdown's first sentence names it."""
    command: str = ""
    """The command that regenerates the report."""
    sections: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    """Further titled tables, rendered after the across-settings table (compare's verdicts)."""
    methods: list[str] = field(default_factory=list)
    """Further sentences of the methods text (how the further tables are computed)."""


COLUMNS = {
    "total_reward": "total reward",
    "normalized_score": "normalised score",
    "regret": "regret",
    "success_rate": "success rate",
    "heldout_total_reward": "held-out total reward",
    "heldout_normalized_score": "held-out normalised score",
    "heldout_success_rate": "held-out success rate",
}
"""The metrics of a setting's table and their titles; a metric no run of the setting logged has
no column."""


def render(report: Report, fmt: str, plots_relative_to: Path | None = None) -> str:
    """The report as text in ``fmt``.

    Args:
        report: the built report.
        fmt: ``markdown``, ``csv``, ``latex`` or ``json``.
        plots_relative_to: for markdown, link the plots relative to this folder.
    """
    if fmt == "csv":
        return report.summary.to_csv(index=False)
    if fmt == "json":
        return _json(report)
    if fmt == "latex":
        return _latex(report)
    return _markdown(report, plots_relative_to)


def setting_tables(report: Report) -> list[tuple[str, pd.DataFrame]]:
    """One display table per setting: algorithm, kind, n, mean ± CI of each metric, tuned values.

    Args:
        report: the built report.
    """
    per = report.summary[report.summary["scope"] == "setting"]
    tables = []
    for setting in sorted(per["setting"].unique(), key=natural_key):
        group = per[per["setting"] == setting]
        rows = []
        for (algorithm, kind), entries in group.groupby(["algorithm", "kind"], sort=False):
            row = {"algorithm": algorithm, "kind": kind, "n": int(entries["n"].max())}
            by_metric = entries.set_index("statistic")
            for metric, title in COLUMNS.items():
                if metric in by_metric.index:
                    entry = by_metric.loc[metric]
                    row[title] = _plus_minus(entry["estimate"], entry["ci_low"], entry["ci_high"])
                    row[f"_{metric}"] = entry["estimate"]
            rows.append(row)
        table = pd.DataFrame(rows)
        table[list(COLUMNS.values())] = table.reindex(columns=list(COLUMNS.values())).fillna("")
        table = table.drop(columns=[t for t in COLUMNS.values() if not table[t].astype(bool).any()])
        table["_learned"] = table["kind"] != "learned"
        table = table.sort_values(["_learned", "_total_reward"], ascending=[True, False])
        table = _add_cost(_add_tuned(table, report, setting), report, setting)
        tables.append((setting, table[[c for c in table.columns if not c.startswith("_")]]))
    return tables


def aggregate_table(report: Report) -> pd.DataFrame:
    """Across settings: IQM of normalised scores and P(improvement), each with its 95% CI.

    Args:
        report: the built report.
    """
    agg = report.summary[report.summary["scope"] == ALL_SETTINGS]
    rows = []
    for (algorithm, kind), entries in agg.groupby(["algorithm", "kind"], sort=False):
        by_stat = entries.set_index("statistic")
        iqm = by_stat.loc["iqm_normalized_score"]
        row = {"algorithm": algorithm, "kind": kind, "settings": iqm["setting"].split()[0]}
        row |= {"runs": int(iqm["n"]), "IQM normalised score [95% CI]": bracket(iqm)}
        row["_order"] = (kind != "learned", -iqm["estimate"])
        if report.baseline:
            key = f"p_improvement_over_{report.baseline}"
            cell = bracket(by_stat.loc[key]) if key in by_stat.index else "—"
            row[f"P(X > {report.baseline}) [95% CI]"] = cell
        rows.append(row)
    if not rows:  # no normalised score at all (only families without an oracle reference)
        columns = ["algorithm", "kind", "settings", "runs", "IQM normalised score [95% CI]"]
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(rows).sort_values("_order")
    return table.drop(columns="_order")


def methods_text(report: Report) -> list[str]:
    """The sentences that state n, the CI methods and the normalisation.

    Args:
        report: the built report.
    """
    trials = ", ".join(str(t) for t in report.trials) or "?"
    lines = [
        f"Per setting: mean ± 95% CI over seeds ({stats.T_INTERVAL}); n = number of seeds. "
        f"Each run is evaluated on {trials} held-out trials (the test task stream of its seed).",
        "Normalised score: random = 0, oracle = 1 (their expected totals on the same held-out "
        "tasks); regret: the oracle's expected total minus the policy's.",
        "Across settings: IQM = interquartile mean of the normalised scores of all runs "
        "(settings x seeds); P(X > Y) = probability that a run of X scores higher than a run "
        "of Y on the same setting, averaged over settings (Agarwal et al. 2021). "
        f"95% CIs: {stats.BOOTSTRAP}.",
    ]
    return lines + report.methods + _caveat_text(report) + report.notes


def _caveat_text(report: Report) -> list[str]:
    """The sentence that explains the caveats of bootstrap CIs, where any CI has one."""
    notes = report.summary.get("ci_note", pd.Series(dtype=object))
    if not notes.fillna("").astype(bool).any():
        return []
    return [
        f"A CI marked 'n too small' resamples fewer than {stats.MIN_BOOTSTRAP_SEEDS} seeds in "
        "some setting: n seeds have only C(2n - 1, n) distinct resamples (10 for n = 3), too few "
        "for a 95% interval; 'zero width' means every resample gave the estimate (P(X > Y) = 1 "
        "so marked: each run of X beat each run of Y in every setting, which resampling those "
        "runs cannot change)."
    ]


def _markdown(report: Report, plots_relative_to: Path | None) -> str:
    runs = report.runs
    counts = runs["kind"].value_counts().to_dict()
    origin = report.origin or f"MLflow experiment `{report.experiment}`"
    command = report.command or f"metarl-bench table --experiment {report.experiment}"
    parts = [
        f"# `{report.name}`: comparison table",
        "",
        f"{origin}: {len(runs)} runs "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))}). "
        f"Regenerate with `{command}`.",
        "",
        *[f"{line}  " for line in methods_text(report)],
    ]
    for setting, table in setting_tables(report):
        parts += ["", f"## {setting}", "", _markdown_table(table)]
        if plots_relative_to is not None:
            parts += _plot_links(report, setting, plots_relative_to)
    parts += ["", "## Across settings", "", _markdown_table(aggregate_table(report))]
    for title, table in report.sections:
        parts += ["", f"## {title}", "", _markdown_table(table)]
    return "\n".join(parts)


def _plot_links(report: Report, setting: str, relative_to: Path) -> list[str]:
    from benchmark.reporting.plots import slug

    links = []
    for plot in report.plots:
        if plot.stem.split("_", 1)[-1] == slug(setting):
            kind = plot.stem.split("_", 1)[0]
            links.append(f"![{kind} curves]({plot.relative_to(relative_to).as_posix()})")
    return ["", " ".join(links)] if links else []


def _markdown_table(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _latex(report: Report) -> str:
    parts = [f"% {report.name}: comparison table (MLflow experiment {report.experiment})"]
    parts += [f"% {line}" for line in methods_text(report)]
    for setting, table in setting_tables(report):
        parts += [f"% {setting}", table.to_latex(index=False, escape=True, caption=setting)]
    aggregate = aggregate_table(report)
    parts.append(aggregate.to_latex(index=False, escape=True, caption="Across settings"))
    for title, table in report.sections:
        parts.append(table.to_latex(index=False, escape=True, caption=title))
    return "\n".join(parts)


def _json(report: Report) -> str:
    summary = report.summary.astype(object).where(report.summary.notna(), None)
    payload = {
        "name": report.name,
        "experiment": report.experiment,
        "baseline": report.baseline,
        "methods": methods_text(report),
        "summary": summary.to_dict("records"),
    }
    for title, table in report.sections:
        payload.setdefault("sections", {})[title] = table.to_dict("records")
    return json.dumps(payload, indent=2)


def natural_key(text: str) -> list:
    """Sort key that orders ``pulls=5`` before ``pulls=10``.

    Args:
        text: a setting label.
    """
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _add_cost(table: pd.DataFrame, report: Report, setting: str) -> pd.DataFrame:
    """Each learned algorithm's env steps (median over seeds) and wall seconds (mean), where the
    runs carry them (run records do)."""
    runs = report.runs[report.runs["setting"] == setting]
    if "env_steps" not in runs or not (runs["env_steps"].fillna(0) > 0).any():
        return table
    groups = runs.groupby("algorithm")
    steps = groups["env_steps"].median()
    wall = groups["wall_seconds"].mean() if "wall_seconds" in runs else pd.Series(dtype=float)
    cell = lambda v, f: f(v) if isinstance(v, float) and v > 0 else "—"  # noqa: E731
    table["env steps"] = [cell(steps.get(a), lambda v: f"{v:,.0f}") for a in table["algorithm"]]
    table["wall s"] = [
        cell(wall.get(a), lambda v: f"{v:.1f}" if v < 100 else f"{v:.0f}")
        for a in table["algorithm"]
    ]
    return table


def _add_tuned(table: pd.DataFrame, report: Report, setting: str) -> pd.DataFrame:
    runs = report.runs[(report.runs["setting"] == setting) & (report.runs["tuned"] != "")]
    if runs.empty:
        return table
    tuned = runs.groupby("algorithm")["tuned"].agg(lambda v: " / ".join(sorted(set(v))))
    table["tuned"] = table["algorithm"].map(tuned).fillna("")
    return table


def _plus_minus(estimate: float, low: float, high: float) -> str:
    if math.isnan(low):
        return format_number(estimate)
    return f"{format_number(estimate)} ± {format_number((high - low) / 2)}"


def bracket(entry: Mapping) -> str:
    """An estimate with its 95% CI as ``estimate [low, high]``, its ``ci_note`` in parentheses
    where it has one (the estimate alone where the CI is NaN).

    Args:
        entry: a summary row, or any mapping with ``estimate``, ``ci_low`` and ``ci_high``.
    """
    if math.isnan(entry["ci_low"]):
        return format_number(entry["estimate"])
    low, high = format_number(entry["ci_low"]), format_number(entry["ci_high"])
    note = entry.get("ci_note", "")
    caveat = f" ({note})" if isinstance(note, str) and note else ""
    return f"{format_number(entry['estimate'])} [{low}, {high}]{caveat}"


def format_number(value: float) -> str:
    """A number as tables show it: 1 decimal from 100, 2 from 10, else 3.

    Args:
        value: the number.
    """
    return (
        f"{value:.1f}"
        if abs(value) >= 100
        else f"{value:.3f}"
        if abs(value) < 10
        else f"{value:.2f}"
    )
