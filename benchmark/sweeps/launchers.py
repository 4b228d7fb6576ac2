"""Where a sweep's jobs run: a local process pool (the default) or Ray tasks on a cluster.

Both run :func:`benchmark.sweeps.worker.execute_job`, one job at a time per worker process with one
torch thread, and hand its record back to the driver. The driver decides how many jobs are in flight
(``slots``), so that a job's MLflow run starts when the job starts.

"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import time
from dataclasses import dataclass
from multiprocessing import connection
from typing import Any, Protocol

from benchmark.sweeps.worker import Job, execute_job, serve
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


@dataclass(eq=False)
class LocalHandle:
    """A job handed to a local worker process; its record once it is done."""

    job: Job
    pid: int
    """The worker process that runs it."""
    record: dict[str, Any] | None = None


class _WorkerProcess:
    """One spawned worker process, the driver's end of its pipe, and the job it runs."""

    def __init__(self, context: Any, pool_ready: Any):
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=serve, args=(child, os.getpid(), pool_ready), name="metarl-bench-worker"
        )
        self.process.start()
        child.close()
        self.pool_ready = pool_ready  # held: the process unpickles it after start() returns
        self.handle: LocalHandle | None = None


class LocalLauncher:
    """A pool of spawned worker processes on this machine, each with its own pipe to the driver.

    Every worker starts when the launcher is made and imports the training stack at once (seconds),
    so a driver that makes the launcher before its own set-up overlaps the two. Workers are reused
    from job to job, each runs one job at a time with one torch thread, and each exits as soon as
    the driver dies; cancelling terminates them. The launcher knows which job each process runs:
    a process that dies (``kill -9``, out of memory) fails only its own job, with its pid and
    signal in the record, and a fresh process takes its place.

    Args:
        workers: pool size (default: the number of cores).
    """

    def __init__(self, workers: int | None = None):
        self.slots = workers or os.cpu_count() or 1
        self.description = f"{self.slots} local worker processes"
        self._context = multiprocessing.get_context("spawn")
        self._closed = False
        pool_ready = self._context.Barrier(self.slots)
        self._workers = [_WorkerProcess(self._context, pool_ready) for _ in range(self.slots)]

    def submit(self, job: Job) -> LocalHandle:
        index = next((i for i, w in enumerate(self._workers) if w.handle is None), None)
        if index is None:
            raise RuntimeError(f"all {self.slots} local workers are busy")
        worker = self._workers[index]
        if not worker.process.is_alive():  # it died while idle
            self._bury(worker)
            worker = self._workers[index]
        handle = worker.handle = LocalHandle(job, worker.process.pid)
        try:
            worker.connection.send(job)
        except OSError:  # it died since: the job fails as if it had died running it
            self._bury(worker)
        return handle

    def wait(self, handles: list[LocalHandle], timeout: float) -> list[LocalHandle]:
        deadline = time.monotonic() + timeout
        while True:
            done = [handle for handle in handles if handle.record is not None]
            busy = [worker for worker in self._workers if worker.handle is not None]
            remaining = deadline - time.monotonic()
            if done or not busy or remaining <= 0:
                return done
            owners = {worker.connection: worker for worker in busy}
            owners.update({worker.process.sentinel: worker for worker in self._workers})
            for ready in connection.wait(list(owners), remaining):
                self._collect(owners[ready])

    def result(self, handle: LocalHandle) -> dict[str, Any]:
        if handle.record is None:
            raise RuntimeError(f"the job {handle.job.label} is not done")
        return handle.record

    def _collect(self, worker: _WorkerProcess) -> None:
        """Take the record a worker sent, or replace the worker if it died (failing its job)."""
        if worker not in self._workers:  # replaced already (its pipe and sentinel were ready)
            return
        if worker.handle is None:
            if not worker.process.is_alive():
                self._bury(worker)
            return
        try:
            if worker.connection.poll():
                worker.handle.record = worker.connection.recv()
                worker.handle = None
                return
        except (EOFError, OSError, pickle.UnpicklingError):
            pass
        else:
            if worker.process.is_alive():
                return
        self._bury(worker)

    def _bury(self, worker: _WorkerProcess) -> None:
        """Fail the job of a dead worker process (if any) and start a fresh one in its place."""
        process = worker.process
        worker.pool_ready.abort()  # the workers started with it stop waiting for it
        process.join(TERMINATE_SECONDS)
        if process.is_alive():  # its pipe broke but it lives on: it cannot serve any more
            process.kill()
            process.join()
        if worker.handle is not None:
            worker.handle.record = {
                "status": "FAILED",
                "error": f"worker process {process.pid} died ({exit_reason(process.exitcode)})",
                "worker": f"{socket.gethostname()}:{process.pid}",
            }
        worker.connection.close()
        index = self._workers.index(worker)
        self._workers[index] = _WorkerProcess(self._context, self._context.Barrier(1))

    def close(self, cancel: bool) -> None:
        if self._closed:
            return
        self._closed = True
        for worker in self._workers:
            if cancel:
                worker.process.terminate()
            else:
                with contextlib.suppress(OSError):
                    worker.connection.send(None)
        for worker in self._workers:
            # Lightning traps SIGTERM to stop training gracefully; do not wait for that.
            worker.process.join(TERMINATE_SECONDS if cancel else None)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.connection.close()


def exit_reason(code: int | None) -> str:
    """A process's exit code in words: the signal's name (``SIGKILL``) or ``exit status N``.

    Args:
        code: :attr:`multiprocessing.Process.exitcode` (negative: killed by that signal).
    """
    if code is None:
        return "still running"
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


class RayLauncher:
    """One Ray task per job, with ``num_cpus`` declared from the job.

    ``ray.init()`` starts a runtime on this machine, or joins the cluster named by ``address`` (or
    by ``RAY_ADDRESS``; ``auto`` finds a running local cluster). A learned job's checkpoint path is
    on the driver's machine: on a multi-machine cluster, a rerun finds a checkpoint only if the
    driver runs in a directory on a filesystem that every node shares.

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
