"""``sweep NAME --dry-run``: a sweep's grid and an estimate of its cost; nothing is started.

The grid is resolved exactly as a sweep resolves it (pair budgets, ``when`` entries, overrides).
Per (kind, algorithm, family): runs, settings, seeds, the training env steps of all its runs (each
learned run's ``trainer.env_steps``, as resolved for that job) and CPU-hours = env steps / the
measured env steps per second of that algorithm on that family (``results/throughput.csv``,
written by ``metarl-bench perf --families``) x the CPU cores a run occupies. A row with no
measurement says "unmeasured" and is left out of the total CPU-hours, with a note. Classical
strategies and the end-of-run evaluations train nothing and are not costed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.run.tracking import SUITE_ROOT
from benchmark.sweeps.grid import Sweep
from benchmark.sweeps.worker import Job

THROUGHPUT = Path("results") / "throughput.csv"
"""The measured rates, read from the working directory, else from the suite's checkout."""


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
    """Measured env steps per second (None: unmeasured, or a classical row)."""

    @property
    def cpu_hours(self) -> float | None:
        """CPU-hours of the row's training; None where no rate was measured."""
        return None if self.rate is None else self.cpu_steps / self.rate / 3600


def throughput_path() -> Path:
    """Where the measured rates are read from (see :data:`THROUGHPUT`)."""
    return THROUGHPUT if THROUGHPUT.is_file() else SUITE_ROOT / THROUGHPUT


def measured_rates(path: Path) -> dict[tuple[str, str], float]:
    """Env steps per second by (algorithm, family) from a ``throughput.csv``; of several rows of
    a pair, one measured at the pair's defaults is preferred, then the last row."""
    from benchmark.studies.perf_families import read_throughput

    rates: dict[tuple[str, str], float] = {}
    for row in sorted(read_throughput(path), key=lambda r: r["setting"].startswith("pair")):
        rates[(row["algorithm"], row["family"])] = float(row["env_steps_per_second"])
    return rates


def cost_rows(jobs: list[Job], rates: dict[tuple[str, str], float]) -> list[CostRow]:
    """One :class:`CostRow` per (kind, algorithm, family) of ``jobs``, in the grid's order."""
    rows: dict[tuple[str, str, str], CostRow] = {}
    for job in jobs:
        key = (job.kind, job.name, job.task)
        row = rows.setdefault(key, CostRow(*key, rate=rates.get((job.name, job.task))))
        row.runs += 1
        row.settings.add(job.setting)
        if job.kind == "learned":
            steps = int(job.params["trainer.env_steps"])
            row.env_steps += steps
            row.cpu_steps += steps * job.cpus
    for row in rows.values():
        if row.kind != "learned":
            row.rate = None
    return list(rows.values())


def dry_run_report(sweep: Sweep, rates: dict[tuple[str, str], float], source: Path) -> str:
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
    unmeasured = [row for row in learned if row.rate is None]
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
    return "unmeasured" if row.rate is None else f"{row.rate:,.0f}"


def _hours(row: CostRow) -> str:
    if row.kind != "learned":
        return "-"
    return "unmeasured" if row.cpu_hours is None else f"{row.cpu_hours:,.2f}"


def dry_run(sweep: Sweep) -> str:
    """The dry run's report of ``sweep`` with the rates of :func:`throughput_path`."""
    source = throughput_path()
    rates: dict[tuple[str, str], Any] = measured_rates(source) if source.is_file() else {}
    return dry_run_report(sweep, rates, source)
