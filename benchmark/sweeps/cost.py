"""``sweep NAME --dry-run``: a sweep's grid and an estimate of its cost; nothing is started.

The grid is resolved exactly as a sweep resolves it (pair budgets, ``when`` entries, overrides).
Per (kind, algorithm, family): runs, settings, seeds, the training env steps of all its runs (each
learned run's ``trainer.env_steps``, as resolved for that job) and CPU-hours = env steps / the
measured env steps per second of that algorithm on that family (``results/throughput.csv``,
written by ``metarl-bench perf --families``) x the CPU cores a run occupies. A rate counts only
where it was measured at a batch size and network size that some run of the row uses: a rate
measured before a pair's defaults changed says "stale". A row with no usable measurement is left
out of the total CPU-hours, with a note. Classical strategies and the end-of-run evaluations
train nothing and are not costed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmark.reporting.records import ledger_keys, read_ledger
from benchmark.run.tracking import SUITE_ROOT
from benchmark.sweeps.grid import Sweep
from benchmark.sweeps.worker import Job

THROUGHPUT = Path("results") / "throughput.csv"
"""The measured rates, read from the working directory, else from the suite's checkout."""


@dataclass(frozen=True)
class Rate:
    """One measured rate of ``throughput.csv`` and the network shape it was measured at."""

    per_second: float
    """Env steps per second."""
    shape: tuple[int, int] | None
    """(trials per batch, hidden units) from the row's setting; None where it names neither."""


@dataclass
class CostRow:
    """The runs of one (kind, algorithm, family) of a sweep."""

    kind: str
    algorithm: str
    family: str
    runs: int = 0
    settings: set[str] = field(default_factory=set)
    env_steps: int = 0
    cpu_steps: int = 0
    """Env steps weighted by the cores each run occupies."""
    rate: float | None = None
    """Measured env steps per second (None: unmeasured or stale, or a classical row)."""
    shapes: set[tuple[int, int]] = field(default_factory=set)
    """The (trials per batch, hidden units) of the row's runs (empty where their config has
    neither, as a plug-in's may not)."""
    stale: Rate | None = None
    """A rate measured at a shape none of the row's runs uses (not counted)."""

    @property
    def cpu_hours(self) -> float | None:
        """CPU-hours of the row's training; None where no rate was measured."""
        return None if self.rate is None else self.cpu_steps / self.rate / 3600


def throughput_path() -> Path:
    """Where the measured rates are read from (see :data:`THROUGHPUT`)."""
    return THROUGHPUT if THROUGHPUT.is_file() else SUITE_ROOT / THROUGHPUT


def measured_rates(path: Path) -> dict[tuple[str, str], Rate]:
    """Measured rates by (algorithm, family) from a ``throughput.csv``; of several rows of a
    pair, one measured at the pair's defaults is preferred, then the last row."""
    from benchmark.studies.perf_families import read_throughput

    rates: dict[tuple[str, str], Rate] = {}
    for row in sorted(read_throughput(path), key=lambda r: r["setting"].startswith("pair")):
        shape = _measured_shape(row["setting"])
        rates[(row["algorithm"], row["family"])] = Rate(float(row["env_steps_per_second"]), shape)
    return rates


def _measured_shape(setting: str) -> tuple[int, int] | None:
    """(batch, hidden) from a setting such as ``pair defaults: batch=64 hidden=128 ...``."""
    batch, hidden = (re.search(rf"\b{key}=(\d+)", setting) for key in ("batch", "hidden"))
    return (int(batch.group(1)), int(hidden.group(1))) if batch and hidden else None


def _shape_text(shape: tuple[int, int]) -> str:
    return f"batch={shape[0]} hidden={shape[1]}"


def cost_rows(jobs: list[Job], rates: dict[tuple[str, str], Rate]) -> list[CostRow]:
    """One :class:`CostRow` per (kind, algorithm, family) of ``jobs``, in the grid's order.

    A learned row takes its pair's rate only where the rate's measured shape is one of the
    row's runs' (batch, hidden); otherwise the rate is kept as :attr:`CostRow.stale`.
    """
    rows: dict[tuple[str, str, str], CostRow] = {}
    for job in jobs:
        key = (job.kind, job.name, job.task)
        row = rows.setdefault(key, CostRow(*key))
        row.runs += 1
        row.settings.add(job.setting)
        if job.kind == "learned":
            steps = int(job.params["trainer.env_steps"])
            row.env_steps += steps
            row.cpu_steps += steps * job.cpus
            batch, hidden = (job.params.get(f"algo.{key}") for key in ("batch_size", "hidden_size"))
            if batch is not None and hidden is not None:  # a plug-in may name neither
                row.shapes.add((int(batch), int(hidden)))
    for row in rows.values():
        rate = rates.get((row.algorithm, row.family)) if row.kind == "learned" else None
        if rate is not None and rate.shape and row.shapes and rate.shape not in row.shapes:
            row.stale = rate
        elif rate is not None:
            row.rate = rate.per_second
    return list(rows.values())


def dry_run_report(sweep: Sweep, rates: dict[tuple[str, str], Rate], source: Path) -> str:
    """The text ``sweep --dry-run`` prints: the grid per row, then the totals and notes."""
    rows = cost_rows(sweep.jobs, rates)
    lines = [
        f"sweep {sweep.name}: {len(sweep.jobs)} runs, seeds {_seeds(sweep.seeds)}; "
        "a dry run: nothing is started",
        *sweep.notes,
        "",
        "| kind | algorithm | family | settings | runs | env steps | env steps/s | CPU-hours |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.kind} | {row.algorithm} | {row.family} | {len(row.settings)} | {row.runs} "
            f"| {_steps(row)} | {_rate(row)} | {_hours(row)} |"
        )
    lines += ["", *_totals(rows, source)]
    return "\n".join(lines)


def _totals(rows: list[CostRow], source: Path) -> list[str]:
    learned = [row for row in rows if row.kind == "learned"]
    measured = [row for row in learned if row.rate is not None]
    unmeasured = [row for row in learned if row.rate is None and row.stale is None]
    stale = [row for row in learned if row.stale is not None]
    steps = sum(row.env_steps for row in learned)
    hours = sum(row.cpu_hours or 0.0 for row in measured)
    lines = [
        f"total: {sum(row.runs for row in rows)} runs, {steps:,} training env steps; "
        f"{hours:,.1f} CPU-hours over the {len(measured)} measured rows "
        f"(rates: {source if measured else 'none measured'})"
    ]
    if unmeasured:
        left = sum(row.env_steps for row in unmeasured)
        names = ", ".join(f"{row.algorithm}/{row.family}" for row in unmeasured[:6])
        names += f" and {len(unmeasured) - 6} more" if len(unmeasured) > 6 else ""
        lines.append(
            f"note: {len(unmeasured)} learned rows are unmeasured and not in the CPU-hours "
            f"({left:,} env steps): {names}; measure them with 'metarl-bench perf --families'"
        )
    for row in stale:
        assert row.stale is not None and row.stale.shape is not None
        runs = ", ".join(_shape_text(shape) for shape in sorted(row.shapes))
        measured = _shape_text(row.stale.shape)
        lines.append(
            f"note: {row.algorithm}/{row.family} is not in the CPU-hours ({row.env_steps:,} env "
            f"steps): its rate was measured at {measured}, its runs use {runs}; "
            f"re-measure with 'metarl-bench perf --families {row.family} --algorithms "
            f"{row.algorithm}'"
        )
    lines.append("note: classical runs and every run's evaluation train nothing; not costed")
    return lines


def _seeds(seeds: list[int]) -> str:
    if seeds == list(range(len(seeds))):
        return f"0..{len(seeds) - 1}"
    return ", ".join(map(str, seeds))


def _steps(row: CostRow) -> str:
    return f"{row.env_steps:,}" if row.kind == "learned" else "-"


def _rate(row: CostRow) -> str:
    if row.kind != "learned":
        return "-"
    if row.stale is not None:
        return "stale"
    return "unmeasured" if row.rate is None else f"{row.rate:,.0f}"


def _hours(row: CostRow) -> str:
    if row.kind != "learned":
        return "-"
    if row.stale is not None:
        return "stale"
    return "unmeasured" if row.cpu_hours is None else f"{row.cpu_hours:,.2f}"


def dry_run(sweep: Sweep, ledger: Path | None = None) -> str:
    """The dry run's report of ``sweep`` with the rates of :func:`throughput_path`; with a
    ``ledger``, of the runs it does not hold (what ``sweep --ledger`` would run)."""
    source = throughput_path()
    rates: dict[tuple[str, str], Rate] = measured_rates(source) if source.is_file() else {}
    if ledger is not None:
        held = ledger_keys(read_ledger(ledger))
        jobs = [job for job in sweep.jobs if (job.name, job.config_hash) not in held]
        note = f"{len(sweep.jobs) - len(jobs)} of its runs are in the ledger {ledger}: left out"
        if not ledger.is_file():
            note = f"no ledger at {ledger} yet: every run is listed"
        sweep = replace(sweep, jobs=jobs, notes=[*sweep.notes, note])
    return dry_run_report(sweep, rates, source)
