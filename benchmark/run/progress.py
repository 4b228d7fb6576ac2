"""A single run's progress: environment steps against the budget, steps per second, the latest
training trial return and the ETA, in place of Lightning's batch counter. On a terminal it is a live
``rich`` display on stderr; otherwise (a log file, CI) plain lines with the same numbers.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import pytorch_lightning as pl
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

INTERVAL_ENV = "METARL_PROGRESS_INTERVAL"
"""Environment variable: seconds between a run's plain progress lines (default 10)."""
DEFAULT_INTERVAL = 10.0
LIVE_REFRESH = 0.5
"""Seconds between updates of the live display (each reads the step counter off the device)."""


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    if minutes >= 60:
        return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


class RunProgress(pl.Callback):
    """A single run's progress in environment steps, in place of Lightning's batch counter.

    It reads the module's ``env_steps`` counter and the ``completed_return`` and
    ``completed_trials`` of the latest training batch (the numbers behind ``train/trial_return``).

    Args:
        budget: the run's budget in environment steps (``trainer.env_steps``).
        interval: seconds between plain lines when stderr is not a terminal (default: the
            ``METARL_PROGRESS_INTERVAL`` environment variable, else 10).
        console: where to draw (default: stderr).
    """

    def __init__(self, budget: int, interval: float | None = None, console: Console | None = None):
        self.budget = int(budget)
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal
        if interval is None:
            interval = float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL))
        self.interval = LIVE_REFRESH if self.live else interval
        self.progress: Progress | None = None
        self.batch: Any = None
        self.trial_return = math.nan
        self.start_steps = 0
        self.started = self.shown = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start_steps = int(pl_module.env_steps)  # more than 0 when a run resumes
        self.started = self.shown = time.monotonic()
        if self.live:
            self.progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                TextColumn("{task.fields[line]}"),
                console=self.console,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=self.budget, line="")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batch = batch
        if time.monotonic() - self.shown >= self.interval:
            self.show(int(pl_module.env_steps))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.show(int(pl_module.env_steps))
        self.stop()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.stop()

    def stop(self) -> None:
        """Close the live display (the terminal keeps its last state)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def show(self, steps: int) -> None:
        """Update the display (or print a plain line) for ``steps`` environment steps done."""
        self.shown = time.monotonic()
        self._read_trial_return()
        line = self.describe(steps, self.shown - self.started)
        if self.progress is not None:
            self.progress.update(self.task, completed=min(steps, self.budget), line=line)
        elif not self.live:
            self.console.print(f"run {line}", markup=False, highlight=False, soft_wrap=True)

    def describe(self, steps: int, elapsed: float) -> str:
        """The progress text: steps / budget, percent, steps/s, trial return, elapsed, ETA."""
        rate = (steps - self.start_steps) / elapsed if elapsed > 0 else 0.0
        left = max(0, self.budget - steps)
        eta = clock(left / rate) if rate > 0 else "?"
        done = min(100.0, 100.0 * steps / self.budget)
        trial = "n/a" if math.isnan(self.trial_return) else f"{self.trial_return:.3g}"
        return (
            f"env steps {steps:,}/{self.budget:,} ({done:.0f}%) | {rate:,.0f} steps/s | "
            f"trial return {trial} | elapsed {clock(elapsed)} | ETA {eta}"
        )

    def _read_trial_return(self) -> None:
        batch = self.batch
        if not isinstance(batch, dict) or "completed_trials" not in batch:
            return
        trials = float(batch["completed_trials"])
        if trials > 0:
            self.trial_return = float(batch["completed_return"]) / trials
