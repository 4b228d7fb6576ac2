"""Test support for LSTM-A3C: a task family that fails inside one worker process.

It lives in its own small module because spawned workers import the module that defines it to
unpickle it; importing the test module itself would cost each worker MLflow's import time.
"""

from __future__ import annotations

import multiprocessing
import time

from tasks.bandits import BernoulliBandit


class ExplodingInWorker1(BernoulliBandit):
    """A bandit that raises in worker 1's process only; worker 0 keeps learning."""

    def step(self, tasks, state, action, generator):
        if multiprocessing.current_process().name.endswith("-1"):
            raise RuntimeError("bandit exploded in worker 1")
        return super().step(tasks, state, action, generator)


def burn_cpu(seconds: float) -> None:
    """Spin for ``seconds`` of this process's CPU time (a child process whose CPU is counted)."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
