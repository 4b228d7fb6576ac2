"""Where a sweep's jobs run: a local process pool (the default) or Ray tasks on a cluster.

Both run :func:`benchmark.worker.execute_job`, one job at a time per worker process with one torch
thread, and hand its record back to the driver. The driver decides how many jobs are in flight
(``slots``), so that a job's MLflow run starts when the job starts.
"""

from __future__ import annotations

import concurrent.futures as futures
import logging
import multiprocessing
import os
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from benchmark.worker import Job, execute_job, init_worker, worker_ready
from tasks import ConfigError, require

LAUNCHERS = ("local", "ray")
TERMINATE_SECONDS = 2.0


class Launcher(Protocol):
    """What the sweep driver needs from a launcher."""

    slots: int
    description: str

    def submit(self, job: Job) -> Any:
        """Start ``job``; return a handle.

        Args:
            job: the run to execute.
        """

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        """The handles among ``handles`` that are done (waits up to ``timeout`` seconds).

        Args:
            handles: handles of jobs in flight.
            timeout: the longest wait in seconds.
        """

    def result(self, handle: Any) -> dict[str, Any]:
        """The record of a finished job (a FAILED record if its worker died).

        Args:
            handle: a handle that :meth:`wait` returned.
        """

    def close(self, cancel: bool) -> None:
        """Release the workers.

        Args:
            cancel: stop the jobs still running (Ctrl-C) instead of letting them end.
        """


class LocalLauncher:
    """A pool of spawned worker processes on this machine.

    Every worker starts when the launcher is made and imports the training stack at once (seconds),
    so a driver that makes the launcher before its own set-up overlaps the two. Workers are reused
    from job to job, each runs one job at a time with one torch thread, and each exits as soon as
    the driver dies; cancelling terminates them.

    Args:
        workers: pool size (default: the number of cores).
    """

    def __init__(self, workers: int | None = None):
        self.slots = workers or os.cpu_count() or 1
        self.description = f"{self.slots} local worker processes"
        self._context = multiprocessing.get_context("spawn")
        self._closed = False
        self._executor = self._new_executor()

    def _new_executor(self) -> futures.ProcessPoolExecutor:
        executor = futures.ProcessPoolExecutor(
            max_workers=self.slots,
            mp_context=self._context,
            initializer=init_worker,
            initargs=(os.getpid(), self._context.Barrier(self.slots)),
        )
        # The pool spawns a worker per submitted job while none is idle: one no-op per slot
        # starts them all now instead of when the first jobs arrive.
        for _ in range(self.slots):
            executor.submit(worker_ready)
        return executor

    def submit(self, job: Job) -> futures.Future:
        try:
            return self._executor.submit(execute_job, job)
        except BrokenProcessPool:
            self._executor = self._new_executor()
            return self._executor.submit(execute_job, job)

    def wait(self, handles: list[futures.Future], timeout: float) -> list[futures.Future]:
        done, _ = futures.wait(handles, timeout=timeout, return_when=futures.FIRST_COMPLETED)
        return list(done)

    def result(self, handle: futures.Future) -> dict[str, Any]:
        try:
            return handle.result()
        except BrokenProcessPool as error:
            return {"status": "FAILED", "error": f"the worker process died ({error})"}

    def close(self, cancel: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if cancel:
            # No new workers from here on; then stop the running ones (the pool's workers are this
            # process's only multiprocessing children) before the executor joins them.
            self._executor.shutdown(wait=False, cancel_futures=True)
            workers = multiprocessing.active_children()
            for process in workers:
                process.terminate()
            for process in workers:
                # Lightning traps SIGTERM to stop training gracefully; do not wait for that.
                process.join(TERMINATE_SECONDS)
                if process.is_alive():
                    process.kill()
                    process.join()
        self._executor.shutdown(wait=True, cancel_futures=cancel)


class RayLauncher:
    """One Ray task per job, with ``num_cpus`` declared from the job.

    ``ray.init()`` starts a runtime on this machine, or joins the cluster named by ``address`` (or
    by ``RAY_ADDRESS``; ``auto`` finds a running local cluster).

    Args:
        workers: jobs in flight at once (default: the cluster's CPUs).
        address: a Ray cluster address; None uses ``RAY_ADDRESS`` or starts a local runtime.
    """

    def __init__(self, workers: int | None = None, address: str | None = None):
        ray = import_ray()
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.slots = workers or cpus
        where = address or os.environ.get("RAY_ADDRESS") or "a local Ray runtime"
        self.description = f"Ray tasks on {where} ({cpus} CPUs, {self.slots} in flight)"
        self._remote = ray.remote(execute_job)
        self._running: set[Any] = set()

    def submit(self, job: Job) -> Any:
        handle = self._remote.options(num_cpus=job.cpus, max_retries=0).remote(job)
        self._running.add(handle)
        return handle

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        ready, _ = self._ray.wait(handles, num_returns=1, timeout=timeout)
        return list(ready)

    def result(self, handle: Any) -> dict[str, Any]:
        self._running.discard(handle)
        try:
            return self._ray.get(handle)
        except self._ray.exceptions.RayError as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            return {
                "status": "FAILED",
                "error": f"Ray task failed: {type(error).__name__} {message}",
            }

    def close(self, cancel: bool) -> None:
        if cancel:
            for handle in self._running:
                self._ray.cancel(handle, force=True)
        if self._started:
            self._ray.shutdown()


def import_ray():
    """Import Ray, or raise a one-line ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--launcher ray needs Ray, an optional extra: pip install 'metarl-bench[ray]'"
        ) from None
    return ray


def check_launcher(name: str, workers: int | None, address: str | None) -> None:
    """Validate the launcher options before anything starts.

    Args:
        name: ``local`` or ``ray``.
        workers: ``--workers`` (None: the default).
        address: ``--ray-address`` (Ray only).
    """
    require(
        name in LAUNCHERS, f"unknown launcher '{name}'; valid launchers: {', '.join(LAUNCHERS)}"
    )
    require(workers is None or workers >= 1, f"--workers must be >= 1, got {workers}")
    require(
        address is None or name == "ray",
        "--ray-address is only used with --launcher ray",
    )
    if name == "ray":
        import_ray()


def make_launcher(name: str, workers: int | None, address: str | None) -> Launcher:
    """The launcher ``name`` (validated by :func:`check_launcher`).

    Args:
        name: ``local`` or ``ray``.
        workers: parallel runs (None: the default).
        address: a Ray cluster address (Ray only).
    """
    if name == "ray":
        return RayLauncher(workers, address)
    return LocalLauncher(workers)
