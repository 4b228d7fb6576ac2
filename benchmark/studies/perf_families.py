"""``metarl-bench perf --families``: env steps per second of one learned algorithm on each family.

Each row trains :data:`FAMILY_ALGORITHM` on one registered family at its pair defaults (what a
sweep runs: ``benchmark/configs/pairs/<algo>/<family>.yaml``, else the dataclass defaults), with
one torch thread, through the real Lightning ``Trainer``, and rates it like the other perf rows: env
steps of one rollout batch over the median update interval (rollout plus update) after warm-up
updates. MuJoCo families are measured where the ``mujoco`` extra is installed.

The rows go to ``results/throughput.csv`` (machine-readable; a new measurement of the same
algorithm and family at the pair defaults, or with ``--quick``, replaces the old one; ``sweep
--dry-run`` reads it) and to a generated section of ``results/perf.md``.
"""

from __future__ import annotations

import csv
import datetime
import platform
from pathlib import Path
from typing import Any

import torch

from benchmark.run.config import load_run_config
from benchmark.run.tracking import git_tags
from benchmark.studies.parity import IntervalTimer
from benchmark.studies.perf import env_steps_per_update, format_table, train_timed
from tasks import ConfigError, get_task_class, require, task_names

FAMILY_ALGORITHM = "rl2"
"""The learned algorithm of the family rows (batched: every trial of a batch in one tensor)."""
THROUGHPUT_COLUMNS = (
    "algorithm",
    "family",
    "setting",
    "env_steps_per_second",
    "commit",
    "date",
    "cpu_model",
)
"""The columns of ``results/throughput.csv``, in order."""
QUICK_BATCH = 16
"""Trials per batch of a ``--quick`` row (a test's measurement, not a sweep's setting)."""
SECTION = ("<!-- perf --families: start -->", "<!-- perf --families: end -->")
"""The markers of the generated section of ``results/perf.md`` (replaced on every write)."""


def family_names(requested: list[str] | None) -> list[str]:
    """The families to measure: ``requested`` (validated), or every registered family whose
    dependencies are installed (MuJoCo families only with the extra).

    Args:
        requested: family names, or None or empty for all.
    """
    names = task_names()
    for name in requested or []:
        require(name in names, f"unknown task '{name}'; valid tasks: {', '.join(names)}")
    if requested:
        return list(requested)
    return [name for name in names if _installed(name)]


def _installed(name: str) -> bool:
    try:
        get_task_class(name).Config()  # a family needing a missing extra refuses its config
    except ConfigError:
        return False
    return True


def family_row(family: str, quick: bool, algo: str = FAMILY_ALGORITHM) -> dict[str, Any]:
    """Env steps per second of ``algo`` training on ``family`` at the pair defaults.

    Args:
        family: a registered family.
        quick: 1 warm-up and 2 measured updates of :data:`QUICK_BATCH` trials, instead of 2
            and 8 at the pair's batch size (the setting says which).
        algo: the learned algorithm.
    """
    warmup, updates = (1, 2) if quick else (2, 8)
    overrides = [f"algo.batch_size={QUICK_BATCH}"] if quick else []
    timer = IntervalTimer()
    module = train_timed(algo, overrides, updates, timer, family, warmup)
    spec = load_run_config(algo, family, overrides)
    work = env_steps_per_update(module)
    setting = (
        f"{'quick' if quick else 'pair defaults'}: batch={module.cfg.batch_size} "
        f"hidden={module.cfg.hidden_size} env_steps/update={work} threads=1"
    )
    return {
        "algorithm": algo,
        "family": family,
        "setting": setting,
        "env_steps_per_second": timer.median_rate(work),
        "budget_env_steps": int(spec.config.trainer.env_steps),
    }


def algorithm_names(requested: list[str] | None) -> list[str]:
    """The learned algorithms to measure: ``requested`` (validated; ``all`` is every registered
    one), or :data:`FAMILY_ALGORITHM`.

    Args:
        requested: algorithm names, or None.
    """
    from baselines import algorithm_names as registered

    valid = registered()
    if not requested:
        return [FAMILY_ALGORITHM]
    if requested == ["all"]:
        return list(valid)
    for name in requested:
        require(
            name in valid, f"unknown algorithm '{name}'; valid algorithms: all, {', '.join(valid)}"
        )
    return list(dict.fromkeys(requested))


def run_family_perf(
    families: list[str] | None,
    quick: bool,
    results: Path = Path("results"),
    algorithms: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Measure one row per (algorithm, family), print them and write ``throughput.csv`` and
    ``perf.md``.

    Args:
        families: the families (None or empty: every installed one).
        quick: fewer updates (for tests).
        results: the folder of ``throughput.csv`` and ``perf.md``.
        algorithms: the learned algorithms (:func:`algorithm_names`; default RL² only).

    Returns:
        the rows as written to the CSV.
    """
    algos = algorithm_names(algorithms)
    names = family_names(families)
    torch.set_num_threads(1)
    stamp = {
        "commit": git_tags()["git_commit"][:12],
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "cpu_model": cpu_model(),
    }
    rows = []
    for algo in algos:
        for name in names:
            measured = family_row(name, quick, algo)
            rows.append({key: {**measured, **stamp}[key] for key in THROUGHPUT_COLUMNS})
    print(format_table(rows))
    results.mkdir(parents=True, exist_ok=True)
    merged = merge_throughput(read_throughput(results / "throughput.csv"), rows)
    write_throughput(merged, results / "throughput.csv")
    write_perf_section(merged, results / "perf.md")
    return rows


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else the platform's processor)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def read_throughput(path: Path) -> list[dict[str, str]]:
    """The rows of a ``throughput.csv`` (none if the file does not exist).

    Args:
        path: the CSV; it must have every column of :data:`THROUGHPUT_COLUMNS`.
    """
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = set(THROUGHPUT_COLUMNS) - set(reader.fieldnames or ())
        require(not missing, f"{path} lacks the columns {', '.join(sorted(missing))}")
        return list(reader)


def merge_throughput(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``old`` rows with each (algorithm, family, mode) measured in ``new`` replaced.

    The mode is the setting's text before its colon (``pair defaults`` or ``quick``), so a new
    measurement at a pair's current defaults replaces one made at its former defaults.
    """

    def key(row: dict[str, Any]) -> tuple[str, str, str]:
        return (row["algorithm"], row["family"], row["setting"].split(":", 1)[0])

    replaced = {key(row) for row in new}
    kept = [row for row in old if key(row) not in replaced]
    return sorted([*kept, *new], key=key)


def write_throughput(rows: list[dict[str, Any]], path: Path) -> None:
    """Write ``rows`` as ``throughput.csv`` (columns :data:`THROUGHPUT_COLUMNS`)."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, THROUGHPUT_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row[key] for key in THROUGHPUT_COLUMNS})


def write_perf_section(rows: list[dict[str, Any]], path: Path) -> None:
    """Replace the generated section of ``perf.md`` (appended if absent) with ``rows``."""
    table = format_table(
        [{**row, "env_steps_per_second": float(row["env_steps_per_second"])} for row in rows]
    )
    body = (
        f"{SECTION[0]}\n## Env steps per second per family\n\n"
        "`metarl-bench perf --families [--algorithms ...]` (each algorithm at each pair's "
        "defaults, one torch thread, median update; also in results/throughput.csv):"
        f"\n\n{table}\n{SECTION[1]}"
    )
    text = path.read_text() if path.is_file() else "# `metarl-bench perf`\n"
    if SECTION[0] in text and SECTION[1] in text:
        before, rest = text.split(SECTION[0], 1)
        text = before + body + rest.split(SECTION[1], 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    path.write_text(text)
