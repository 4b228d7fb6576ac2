"""A sweep's progress: runs done / total, failures, elapsed time and ETA. On a terminal it is a live
``rich`` progress bar on stderr; otherwise one line per finished run with the same numbers. Per-run
displays are off inside a sweep.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from benchmark.run.progress import clock

if TYPE_CHECKING:
    from benchmark.sweeps.worker import Job


class SweepProgress:
    """Context manager that shows a sweep's progress.

    Args:
        name: the sweep's name.
        total: runs to execute in this invocation.
        console: where to draw (default: stderr).
    """

    def __init__(self, name: str, total: int, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.name, self.total = name, total
        self.done = self.failed = 0
        self.started = time.monotonic()
        self.live = self.console.is_terminal
        self.progress: Progress | None = None

    def __enter__(self) -> SweepProgress:
        if self.live:
            self.progress = Progress(
                TextColumn("[bold]sweep {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("runs, {task.fields[failed]} failed, elapsed"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.name, total=self.total, failed=0)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()

    def finished(self, job: Job, record: dict[str, Any]) -> None:
        """Count one finished (or failed) run and update the display.

        Args:
            job: the run.
            record: its record from the worker (``status``, ``seconds``, ``error``).
        """
        self.done += 1
        ok = record["status"] == "FINISHED"
        self.failed += not ok
        seconds = record.get("seconds", float("nan"))
        outcome = f"{seconds:.0f}s" if ok else f"FAILED: {record.get('error', '')}"
        if self.progress is not None:
            if not ok:
                self.progress.console.print(f"[red]{job.label}: {outcome}")
            self.progress.update(self.task, advance=1, failed=self.failed)
            return
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.done * (self.total - self.done)
        self.console.print(
            f"[{self.done}/{self.total}] {job.label}: {outcome} | {self.failed} failed, "
            f"elapsed {clock(elapsed)}, ETA {clock(eta)}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
