"""``metarl-bench compare ALGO``: run only ALGO on the stored baselines' protocol and set it beside
their stored runs, with a verdict per baseline.

1. The stored rows: run records (:mod:`benchmark.reporting.records`) from ledgers (default: the
   committed ``results/reference/*.csv``) or from an MLflow experiment, narrowed by
   ``--families`` and ``--settings``.
2. The protocol of each setting, from its stored learned-baseline rows (all rows where it has
   none): the task parameters, the held-out evaluation trials (the most common), the seeds (the
   first ``--seeds`` of those stored; default all) and the env-step budget (the most common learned
   budget, the larger on a tie; ``--budget`` replaces it, and the table then shows both).
3. One sweep, ``compare-<algo>``, of ALGO over those settings and seeds, run by the sweep driver
   (so a rerun skips ALGO's finished runs, and ``--workers``/``--launcher`` work as in ``sweep``).
4. The protocol check: each stored row must match ALGO's runs of its setting in family version,
   task parameters and evaluation trials. A mismatch is one line and exit status 2 unless
   ``--allow-mismatch``; then the stored rows that differ are kept under the name
   ``<name> (protocol differs)`` and a note says what differs.
5. The table (:mod:`benchmark.reporting.table`'s report): per setting ALGO beside every stored
   learned baseline and classical strategy; across settings the IQM; and per baseline
   P(ALGO > baseline) with its bootstrap CI, the difference of per-seed normalised scores with its
   Welch CI, the minimum detectable difference and a verdict (:mod:`benchmark.reporting.verdict`).
   It is written to ``results/compare-<algo>.md`` (naming the command that regenerates it) and
   ``.csv`` by ``table``'s writer, and printed in the chosen format (also to ``--out``).
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from benchmark.reporting.comparison import add_verdicts
from benchmark.reporting.records import expand_paths, protocol, read_records, records_from_store
from benchmark.reporting.report import render
from benchmark.reporting.table import FORMATS, summarised_report, write_tables
from benchmark.run.tracking import SUITE_ROOT, safe_name
from benchmark.sweeps.driver import EXIT_INTERRUPTED, EXIT_PENDING, sweep_command
from benchmark.sweeps.grid import Sweep, load_sweep
from benchmark.sweeps.launchers import check_launcher
from tasks import get_task_class, require

REFERENCE = "results/reference/*.csv"
"""The committed ledgers of the reference table: compare's default ``--against``."""
DIFFERS = " (protocol differs)"
CHECKED = ("task_version", "task_params", "eval_trials")
"""The protocol fields on which ALGO's runs and a stored row must agree."""


def compare_command(
    algo: str,
    options: dict[str, Any],
    tracking_uri: str,
) -> int:
    """Run ALGO on the stored rows' protocol, check it, write and print the comparison table.

    Args:
        algo: a registered algorithm or ``module:Class``.
        options: ``against`` (files, globs or one experiment; None: the reference ledgers),
            ``families``, ``settings`` (lists or None), ``seeds`` (int or None), ``budget``
            (env steps or None), ``allow_mismatch``, ``format``, ``out``, ``launcher``,
            ``workers``, ``ray_address``, ``results_dir`` (default ``results``: where
            ``compare-<algo>.md`` and ``.csv`` go).
        tracking_uri: the MLflow store ALGO's runs go to.

    Returns:
        the sweep's exit status when it did not finish cleanly, else 0.
    """
    fmt = options.get("format", "markdown")
    require(fmt in FORMATS, f"unknown format '{fmt}'; valid formats: {', '.join(FORMATS)}")
    launcher, workers = options.get("launcher", "local"), options.get("workers")
    check_launcher(launcher, workers, options.get("ray_address"))
    stored, source = stored_rows(options.get("against"), tracking_uri)
    stored = narrow(stored, options.get("families"), options.get("settings"))
    plan = setting_protocols(stored, options.get("seeds"), options.get("budget"))
    allow = bool(options.get("allow_mismatch"))
    check_protocol(algo, planned_protocols(plan), stored, allow)  # refuse before running
    sweep, settings = compare_sweep(algo, plan)
    status = sweep_command(sweep, [], launcher, workers, tracking_uri, options.get("ray_address"))
    if status in (EXIT_INTERRUPTED, EXIT_PENDING):
        return status
    hashes = {job.config_hash for job in sweep.jobs}
    mine = records_from_store(tracking_uri, sweep.experiment, hashes)
    require(not mine.empty, f"no run of {algo} finished; see the sweep's errors above")
    mine["setting"] = mine["config_hash"].map(settings)
    stored, notes = check_protocol(algo, observed_protocols(mine), stored, allow)
    runs = pd.concat([stored, mine], ignore_index=True)
    origin = f"`{algo}` (MLflow experiment `{sweep.experiment}`) beside the stored rows of {source}"
    report = summarised_report(sweep.name, sweep.experiment, runs, None, origin, False)
    report.command = command_line(algo, options)
    report.notes += notes + budget_notes(algo, plan, stored)
    add_verdicts(report, algo)
    written = write_tables(report, Path(options.get("results_dir") or "results"))
    print(f"wrote {' and '.join(str(path) for path in written)}", file=sys.stderr)
    text = render(report, fmt)
    print(text)
    if options.get("out"):
        Path(options["out"]).write_text(text + "\n")
    return status


def stored_rows(against: list[str] | None, tracking_uri: str) -> tuple[pd.DataFrame, str]:
    """The stored runs to compare against, and how the report names them.

    Args:
        against: ledger files or globs, or one MLflow experiment name (None: the reference
            ledgers, :data:`REFERENCE`).
        tracking_uri: the store holding a named experiment.
    """
    if not against:
        pattern = str(SUITE_ROOT / REFERENCE)
        require(
            bool(list(Path(SUITE_ROOT).glob(REFERENCE))),
            f"no stored baselines: {REFERENCE} holds no ledgers; "
            "name ledgers or an MLflow experiment with --against",
        )
        return read_records([pattern]), f"`{REFERENCE}`"
    looks_like_files = any(Path(a).exists() or any(c in a for c in "*?[") for a in against)
    if len(against) == 1 and not looks_like_files and not against[0].endswith(".csv"):
        return records_from_store(tracking_uri, against[0]), f"MLflow experiment `{against[0]}`"
    files = expand_paths(against)
    return read_records(files), ", ".join(f"`{f}`" for f in files)


def narrow(stored: pd.DataFrame, families: list[str] | None, settings: list[str] | None):
    """The stored rows of the named families and settings.

    A setting is named by its words: ``"arms=5 pulls=10"`` picks every stored setting with both.

    Args:
        stored: run records.
        families: family names (None: all).
        settings: setting descriptions (None: all).
    """
    if families:
        present = sorted(stored["task"].unique())
        for family in families:
            require(
                family in present,
                f"no stored rows of family '{family}'; stored families: {', '.join(present)}",
            )
        stored = stored[stored["task"].isin(families)]
    if settings:
        labels = sorted(stored["setting"].unique())
        chosen = set()
        for wanted in settings:
            matched = [s for s in labels if set(wanted.split()) <= set(s.split())]
            require(
                bool(matched),
                f"no stored setting matches '{wanted}'; stored settings: {'; '.join(labels)}",
            )
            chosen.update(matched)
        stored = stored[stored["setting"].isin(chosen)]
    return stored.reset_index(drop=True)


def setting_protocols(
    stored: pd.DataFrame, seeds: int | None, budget: int | None
) -> list[dict[str, Any]]:
    """Per stored setting: its family, task parameters, trials, seeds and ALGO's budget.

    Args:
        stored: the narrowed run records.
        seeds: how many of the stored seeds to run (None: all).
        budget: env steps for ALGO (None: the stored learned baselines' budget).
    """
    require(not stored.empty, "no stored rows to compare against (see --against, --families)")
    require(seeds is None or seeds >= 2, f"--seeds must be >= 2 (CIs need seeds), got {seeds}")
    require(budget is None or budget >= 1, f"--budget must be >= 1 env step, got {budget}")
    plan = []
    for setting, rows in stored.groupby("setting", sort=True):
        learned = rows[rows["kind"] == "learned"]
        basis = learned if len(learned) else rows
        protocols = [protocol(row) for row in basis.to_dict("records")]
        budgets = [p.get("env_steps_budget") or 0 for p in protocols if p.get("env_steps_budget")]
        stored_budget = _most_common(budgets) if budgets else None
        require(
            budget is not None or stored_budget is not None,
            f"setting '{setting}' has no stored learned run to take a budget from; give --budget",
        )
        trials = _most_common([p["eval_trials"] for p in protocols if p.get("eval_trials")])
        plan.append(
            {
                "setting": setting,
                "task": basis["task"].iloc[0],
                "task_params": protocols[0]["task_params"],
                "trials": int(trials),
                "seeds": sorted(int(s) for s in basis["seed"].unique())[:seeds],
                "budget": int(budget if budget is not None else stored_budget),
                "stored_budget": stored_budget,
            }
        )
    return plan


def compare_sweep(algo: str, plan: list[dict[str, Any]]) -> tuple[Sweep, dict[str, str]]:
    """One sweep of ALGO over the planned settings, and the stored setting of each of its runs.

    Each setting is validated and expanded by the sweep grid (a YAML of one task setting and its
    seeds); the jobs of all settings make one sweep, ``compare-<algo>``.

    Args:
        algo: the algorithm.
        plan: :func:`setting_protocols` output.

    Returns:
        the sweep, and config hash -> the stored setting label its run stands beside.
    """
    name = f"compare-{safe_name(algo)}"
    jobs, seeds, settings = [], set(), {}
    with tempfile.TemporaryDirectory() as tmp:
        for index, entry in enumerate(plan):
            overrides = {"trainer.env_steps": entry["budget"], "eval.trials": entry["trials"]}
            task = {"name": entry["task"], "variants": [entry["task_params"]]}
            spec = {"name": name, "seeds": entry["seeds"], "algorithms": [algo]}
            spec["tasks"] = [task | {"overrides": overrides}]
            path = Path(tmp) / f"setting-{index}.yaml"
            path.write_text(yaml.safe_dump(spec, sort_keys=False))
            for job in load_sweep(str(path), []).jobs:
                jobs.append(job)
                settings[job.config_hash] = entry["setting"]
            seeds.update(entry["seeds"])
    resolved = {"name": name, "algorithm": algo, "plan": json.loads(json.dumps(plan))}
    return Sweep(name, name, sorted(seeds), jobs, "compare", resolved), settings


def planned_protocols(plan: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The protocol ALGO's runs will have in each stored setting (this checkout's family version).

    Args:
        plan: :func:`setting_protocols` output.
    """
    return {
        entry["setting"]: {
            "task_version": get_task_class(entry["task"]).version,
            "task_params": entry["task_params"],
            "eval_trials": entry["trials"],
        }
        for entry in plan
    }


def observed_protocols(mine: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The protocol of ALGO's finished runs in each stored setting (their first run's).

    Args:
        mine: ALGO's run records, ``setting`` already the stored setting's label.
    """
    found: dict[str, dict[str, Any]] = {}
    for row in mine.to_dict("records"):
        fields = protocol(row)
        found.setdefault(row["setting"], {key: fields.get(key) for key in CHECKED})
    return found


def check_protocol(
    algo: str, expected: dict[str, dict[str, Any]], stored: pd.DataFrame, allow: bool
) -> tuple[pd.DataFrame, list[str]]:
    """Refuse stored rows whose protocol differs from ALGO's, or mark them (``allow``).

    Args:
        algo: the algorithm.
        expected: stored setting -> ALGO's protocol there (:data:`CHECKED` fields).
        stored: the stored run records.
        allow: keep differing rows, renamed ``<name> (protocol differs)``, with a note each.

    Returns:
        the stored rows of ALGO's settings (renamed where they differ, and ``<algo> (stored)``
        where a stored learned row has ALGO's name), and the notes on what differs.
    """
    stored = stored[stored["setting"].isin(expected)].copy()
    notes, differing = [], []
    for index, row in stored.iterrows():
        fields, want = protocol(row), expected[row["setting"]]
        diffs = [
            f"{key} {fields.get(key)} vs {want[key]}"
            for key in CHECKED
            if fields.get(key) != want[key]
        ]
        if diffs:
            differing.append(index)
            notes.append(f"{row['setting']}: stored {row['algorithm']} seed {row['seed']}: ")
            notes[-1] += f"{', '.join(diffs)} ({algo}'s)"
    if differing and not allow:
        raise_mismatch(notes, len(differing))
    stored.loc[differing, "algorithm"] = stored.loc[differing, "algorithm"] + DIFFERS
    same_name = (stored["algorithm"] == algo) & (stored["kind"] == "learned")
    stored.loc[same_name, "algorithm"] = f"{algo} (stored)"
    marked = [f"Rows named '...{DIFFERS}' ran under another protocol: {n}." for n in notes]
    return stored, marked[:20] + ([f"... and {len(notes) - 20} more."] if len(notes) > 20 else [])


def raise_mismatch(notes: list[str], count: int) -> None:
    """One line: the first difference, how many stored rows differ, and the way out."""
    require(
        False,
        f"protocol mismatch: {count} stored rows differ from this run's protocol; first: "
        f"{notes[0]}; rerun the baselines on this protocol, or pass --allow-mismatch to show "
        "them marked",
    )


def budget_notes(algo: str, plan: list[dict[str, Any]], stored: pd.DataFrame) -> list[str]:
    """A note for each setting where ALGO's budget differs from the stored learned budget."""
    return [
        f"{entry['setting']}: {algo} trained for {entry['budget']:,} env steps (--budget), the "
        f"stored learned baselines for {entry['stored_budget']:,}."
        for entry in plan
        if entry["stored_budget"] is not None and entry["budget"] != entry["stored_budget"]
    ]


def command_line(algo: str, options: dict[str, Any]) -> str:
    """The ``metarl-bench compare`` command that regenerates this comparison."""
    words = ["metarl-bench", "compare", algo]
    for key in ("against", "families", "settings"):
        if options.get(key):
            words += [f"--{key}", *options[key]]
    for key in ("seeds", "budget"):
        if options.get(key) is not None:
            words += [f"--{key}", str(options[key])]
    if options.get("allow_mismatch"):
        words.append("--allow-mismatch")
    return " ".join(shlex.quote(word) for word in words)


def _most_common(values: list[Any]) -> Any:
    counts = Counter(values)
    return max(counts, key=lambda value: (counts[value], value))
