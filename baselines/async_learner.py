"""Asynchronous actor-learners on a Hogwild shared model (Mnih et al. 2016), for any algorithm.

``workers`` processes each hold a local copy of the algorithm's module and their own batched
environments (a :class:`baselines.rollout.RolloutCollector`, the rollout loop the DataModule uses,
on a train stream of their own). Each repeatedly

1. copies the shared parameters into its local module (they may be stale by the time they are used);
2. plays ``t_max`` steps of its own ``batch_size`` trials, carrying the hidden state across
   segments and zeroing it only at trial boundaries;
3. computes the gradient of the module's ``loss(segment)`` on the local copy, clips it to
   ``cfg.grad_clip``, and applies it to the shared parameters with the shared optimiser at once, at
   the rate ``cfg.lr`` under ``cfg.lr_schedule`` over the run's shared update counter, without
   waiting for any other worker.

The module provides ``name``, ``cfg`` (an :class:`baselines.base.ActorCriticConfig`), ``act`` and
``loss``; its parameters, which the optimiser holds, are the shared model. This module is the
Lightning process's side (:class:`AsyncLearner`, :class:`WorkerPool`); the worker's side, its update
loop and the shared optimiser, is :mod:`baselines.actor_learner`.

Design choices
--------------
*Hogwild shared memory, not a parameter server.* The parameters and the optimiser's statistics
(RMSProp's running mean square, or Adam's moments, and the per-parameter ``step`` counters) live in
shared memory; each worker applies its own updates lock-free, as Mnih et al. did with their shared
RMSProp (Recht et al. 2011 for why lock-free updates are fine). A parameter server inside the
Lightning process would move every gradient and every new set of weights through a pipe and apply
all updates in one process, which competes for the same cores as the workers and turns the
Lightning process into the serial bottleneck. With Hogwild the Lightning process only sleeps on a
queue. Because the module's parameters *are* the shared model, Lightning's checkpoint, the
evaluation policy and the logged metrics see the latest parameters with no copy step. The price:
training runs on the CPU only, and concurrent updates may interleave (accepted by Hogwild).

*Fitting Lightning.* :class:`AsyncLearner` is the Lightning side: the module's ``experience``
returns :meth:`AsyncLearner.reports`, which the DataModule yields in place of rollouts. It starts
the workers, waits until all are ready, releases them together and yields their progress reports
(one per applied update). Workers claim updates from a shared counter, so together they apply
exactly the run's budget.

*Shutdown.* Workers are daemon processes started with the ``spawn`` context. :class:`AsyncLearner`
is also a callback that closes the pool on train end, on any exception in the Lightning process
(including Ctrl-C, which Lightning turns into a graceful shutdown, and SIGTERM, after which it
stops at the end of the current step) and at teardown; the report stream's ``finally`` and
multiprocessing's exit handler are further nets. Closing sets a stop event, drains the report
queue while joining with a timeout, then terminates and finally kills stragglers. A worker ignores
SIGINT (the terminal sends it to the whole process group; the Lightning process decides), reports
its own exception with its traceback (re-raised in the Lightning process as :class:`WorkerError`),
and exits when its parent disappears (even a SIGKILLed one). Each worker runs
``torch.set_num_threads(1)``: parallelism comes from processes, one per core.

Runs with more than one worker are not bit-reproducible: the interleaving of updates depends on
the scheduler.
"""

from __future__ import annotations

import contextlib
import os
import queue
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
import torch.multiprocessing as mp

from baselines.actor_learner import WorkerContext, worker_main
from baselines.base import MetaRLAlgorithm

START_TIMEOUT_S = 120.0
"""How long the Lightning process waits for every worker to import and report ready."""
JOIN_TIMEOUT_S = 5.0
"""How long closing waits for workers to stop by themselves before terminating them."""


class WorkerError(RuntimeError):
    """An actor-learner process failed; the message carries its traceback."""


# The pool, seen from the Lightning process --------------------------------------------------
class WorkerPool:
    """Starts the actor-learners, hands out their reports and shuts them down for sure.

    Args:
        module: the algorithm's module, its parameters already in shared memory.
        optimizer: the shared optimiser over them (:func:`make_shared_optimizer`).
        workers: actor-learner processes.
        seed: the run's seed.
        budget: updates to apply in total, over all workers.
        done: updates already applied (a run resumed from a checkpoint); the workers claim the
            rest, and the learning-rate schedule continues from there.
        delays: seconds worker i pauses between computing and applying each gradient (missing
            entries: no pause).
    """

    def __init__(
        self,
        module: MetaRLAlgorithm,
        optimizer: torch.optim.Optimizer,
        workers: int,
        seed: int,
        budget: int,
        done: int = 0,
        delays: Sequence[float] = (),
    ):
        self.name = module.name
        self.mp = mp.get_context("spawn")
        self.reports = self.mp.Queue()
        self.start_event, self.stop_event = self.mp.Event(), self.mp.Event()
        self.claimed, self.applied = self.mp.Value("q", done), self.mp.Value("q", done)
        shared = {
            "seed": seed,
            "module": module,
            "optimizer": optimizer,
            "reports": self.reports,
            "start": self.start_event,
            "stop": self.stop_event,
            "claimed": self.claimed,
            "applied": self.applied,
            "budget": budget,
            "parent_pid": os.getpid(),
        }
        pauses = [float(delay) for delay in delays] + [0.0] * (workers - len(delays))
        self.contexts = [WorkerContext(index=i, delay=pauses[i], **shared) for i in range(workers)]
        self.processes: list[Any] = []
        self.closed = False

    def start(self) -> None:
        """Spawn every worker, wait until all are ready, then release them together."""
        for ctx in self.contexts:
            process = self.mp.Process(
                target=worker_main, args=(ctx,), name=f"{self.name}-worker-{ctx.index}", daemon=True
            )
            process.start()
            self.processes.append(process)
        ready: set[int] = set()
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(ready) < len(self.contexts):
            ready.add(self.next_report(deadline)["worker"])
        self.start_event.set()

    def next_report(self, deadline: float | None = None) -> dict[str, Any]:
        """The next report from any worker; raises :class:`WorkerError` if a worker failed.

        Args:
            deadline: ``time.monotonic()`` after which waiting is an error (None: no limit).
        """
        quiet_since_all_exited = 0
        while True:
            try:
                report = self.reports.get(timeout=0.2)
            except queue.Empty:
                if deadline is not None and time.monotonic() > deadline:
                    raise WorkerError(f"{self.name} workers did not report in time") from None
                quiet_since_all_exited = quiet_since_all_exited + 1 if self._all_exited() else 0
                if quiet_since_all_exited > 1:
                    raise WorkerError(
                        f"{self.name} workers stopped before the budget was spent"
                    ) from None
                continue
            if report["kind"] == "error":
                lines = report["traceback"].strip().splitlines()
                raise WorkerError(
                    f"{self.name} worker {report['worker']} failed: {lines[-1]}\n"
                    f"{report['traceback']}"
                )
            return report

    def _all_exited(self) -> bool:
        """True when every worker has exited cleanly; raises if one died with an error code."""
        for index, process in enumerate(self.processes):
            if process.exitcode not in (None, 0):
                raise WorkerError(
                    f"{self.name} worker {index} died with exit code {process.exitcode}"
                )
        return all(process.exitcode == 0 for process in self.processes)

    def close(self) -> None:
        """Stop every worker: ask, wait while draining reports, then terminate, then kill."""
        if self.closed:
            return
        self.closed = True
        self.stop_event.set()
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while any(p.is_alive() for p in self.processes) and time.monotonic() < deadline:
            # A worker exits only once what it put on the queue is flushed: keep draining.
            with contextlib.suppress(queue.Empty):
                self.reports.get(timeout=0.05)
        for process in self.processes:
            if process.is_alive():
                process.terminate()
                process.join(1.0)
            if process.is_alive():
                process.kill()
            process.join()
        self.reports.close()
        self.reports.cancel_join_thread()


class AsyncLearner(pl.Callback):
    """The Lightning side of the actor-learners: their report stream, and a callback that shuts
    them down whenever training ends, normally or not.

    Args:
        workers: actor-learner processes.
        delays: seconds worker i pauses between computing and applying each gradient.
    """

    def __init__(self, workers: int, delays: Sequence[float] = ()):
        self.workers = workers
        self.delays = list(delays)
        self.pool: WorkerPool | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The module travels to the workers with its learner; the pool stays in this process.
        return {**self.__dict__, "pool": None}

    def reports(
        self,
        module: MetaRLAlgorithm,
        optimizer: torch.optim.Optimizer,
        seed: int,
        budget: int,
        done: int = 0,
    ) -> Iterator[dict[str, Any]]:
        """Start the workers and yield one progress report per applied update, up to the budget.

        Args:
            module: the algorithm's module, its parameters in shared memory.
            optimizer: the shared optimiser over them.
            seed: the run's seed (each worker derives its own from it).
            budget: updates in the whole run.
            done: updates already applied (a resumed run).
        """
        self.pool = WorkerPool(module, optimizer, self.workers, seed, budget, done, self.delays)
        try:
            self.pool.start()
            for _ in range(budget - done):
                yield self.pool.next_report()
        finally:
            self.close()

    def close(self) -> None:
        """Shut the worker processes down (idempotent)."""
        if self.pool is not None:
            self.pool.close()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.close()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self.close()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.close()
