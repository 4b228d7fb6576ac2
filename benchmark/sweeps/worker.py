"""What a sweep worker does with one job: train (or evaluate) it and hand the record back.

A worker never writes to MLflow. Training metrics go to an in-memory Lightning logger, artifacts are
read back as bytes, and the whole record returns to the sweep driver, which is the only process that
writes to the tracking store. Parallel workers therefore cannot hit sqlite's "database is locked",
and a run is marked FINISHED only by a live driver that holds its complete record.

The same :func:`execute_job` runs in a local process pool (:func:`serve` is a pool process's life)
and in a Ray task.

A learned job trains with a resumable checkpoint at the path the driver chose (``Job.checkpoint``),
which also holds the metrics logged so far. A job whose checkpoint file exists and holds its config
continues from it, so a run whose worker was killed restarts at its last checkpoint, and its record
still has its whole metric history. A checkpoint written under another version of the task family
is not continued: the run starts from zero, with a one-line note on stderr. On a multi-machine
Ray cluster the file is found only where the path is on a filesystem that the driver's machine and
every node share.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PARENT_POLL_SECONDS = 0.5
POOL_READY_SECONDS = 60.0


@dataclass
class Job:
    """One run of a sweep: a learned algorithm to train, or a classical strategy to evaluate."""

    kind: str
    """``learned`` or ``classical``."""
    name: str
    """The algorithm (registered name or ``module:Class``) or the strategy name."""
    task: str
    """The registered family."""
    task_params: dict[str, Any]
    """The family's resolved parameters (the task setting)."""
    seed: int
    """The run's seed (training streams and the held-out test stream derive from it)."""
    overrides: list[str]
    """``key=value`` strings that rebuild the run's config in the worker."""
    config_hash: str
    """The hash of the resolved config: the run's identity for resume."""
    params: dict[str, Any] = field(default_factory=dict)
    """The flattened resolved config, logged as MLflow params."""
    config_yaml: str = ""
    """The resolved config as YAML (the ``config.yaml`` artifact)."""
    trials: int = 1000
    """Held-out evaluation trials (classical jobs; learned ones read ``eval.trials``)."""
    eval_seed: int = 0
    """Seed of the held-out test stream (classical jobs)."""
    cpus: int = 1
    """CPU cores the run occupies (worker slots locally, ``num_cpus`` on Ray)."""
    checkpoint: str = ""
    """Where a learned run keeps its resumable checkpoint (set by the driver; "" for none)."""

    @property
    def setting(self) -> str:
        """The task setting as text, e.g. ``bernoulli-bandit arms=5 pulls=10``."""
        from tasks import setting_label

        return setting_label(self.task, self.task_params)

    @property
    def label(self) -> str:
        """A short run name: ``algorithm | setting | seed``."""
        return f"{self.name} | {self.setting} | seed {self.seed}"


def init_worker(parent_pid: int, pool_ready: Any) -> None:
    """Prepare a pool worker: one torch thread, no per-run output, no Ctrl-C, die with the driver.

    Ctrl-C reaches the whole process group; only the driver handles it (it marks the running runs
    KILLED and terminates the workers), so a worker ignores SIGINT. The worker then imports the
    training stack and waits for the other workers started with it, so that the pool's first jobs
    start together.

    Args:
        parent_pid: the driver's pid; the worker exits when its parent changes (driver killed).
        pool_ready: a barrier with one party per worker started together (the launcher aborts
            it when one of them dies).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    quiet_worker()
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    preload_training_stack()
    # Past the timeout, a worker that did not come up is not waited for.
    with contextlib.suppress(threading.BrokenBarrierError):
        pool_ready.wait(POOL_READY_SECONDS)


def preload_training_stack() -> None:
    """Import what every job needs (torch, Lightning, the registries) before the first job.

    Seconds per process, paid while the worker waits for work rather than inside its first run.
    """
    import benchmark.run.policies  # noqa: F401
    import benchmark.run.runner  # noqa: F401


def quiet_worker() -> None:
    """One intra-op thread and no Lightning chatter: a sweep fills cores with runs, not threads."""
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _watch_parent(parent_pid: int) -> None:
    # A killed driver cannot stop its workers; they notice the new parent and exit themselves.
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def serve(connection: Any, parent_pid: int, pool_ready: Any) -> None:
    """A local pool process: prepare, then run each job the driver sends and send back its record.

    The process ends when the driver sends None, or when the driver's end of the pipe closes.

    Args:
        connection: this process's end of its pipe to the driver.
        parent_pid: the driver's pid (see :func:`init_worker`).
        pool_ready: a barrier with one party per worker started together.
    """
    init_worker(parent_pid, pool_ready)
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        connection.send(execute_job(job))


def execute_job(job: Job) -> dict[str, Any]:
    """Run one job; return its record (never raises for an ordinary failure of the run).

    Args:
        job: the run to train or evaluate.

    Returns:
        ``status`` (FINISHED or FAILED), ``metrics`` [(key, value, step, ms)], ``extra_params``,
        ``artifacts`` {relative path: bytes}, ``summary``, ``seconds``, ``worker``,
        ``resumed_from_env_steps`` (a learned run continued from its checkpoint) and, on failure,
        ``error`` (one line) and ``traceback``.
    """
    quiet_worker()
    started = time.perf_counter()
    try:
        record = _train(job) if job.kind == "learned" else _evaluate(job)
        record["status"] = "FINISHED"
    except Exception as error:  # the run failed; the driver records it as FAILED and goes on
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        record = {
            "status": "FAILED",
            "error": f"{type(error).__name__}: {message}",
            "traceback": traceback.format_exc(),
        }
    record["seconds"] = time.perf_counter() - started
    record["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return record


def _train(job: Job) -> dict[str, Any]:
    from benchmark.run.config import load_run_config
    from benchmark.run.runner import MemoryLogger, eval_metrics, fit_and_evaluate, write_artifacts

    spec = load_run_config(job.name, job.task, job.overrides)
    if spec.config_hash() != job.config_hash:
        raise RuntimeError(f"config of {job.label} resolved differently in the worker")
    path = Path(job.checkpoint) if job.checkpoint else None
    resume = resume_point(job, path)
    logger = MemoryLogger()
    if resume is not None:
        logger.history = [tuple(row) for row in resume["metrics"]]
    fit = fit_and_evaluate(
        spec,
        logger,
        False,
        path,
        resume=resume,
        checkpoint_extra=lambda: {"metrics": logger.history},
    )
    env_steps = int(fit.module.env_steps)
    stamp = int(time.time() * 1000)
    metrics = list(logger.history)
    for key, value in eval_metrics(fit).items():
        metrics.append((key, float(value), env_steps, stamp))
    with tempfile.TemporaryDirectory() as tmp:
        files = write_artifacts(spec, fit, Path(tmp))
        artifacts = {_artifact_path(path, folder): path.read_bytes() for path, folder in files}
    summary = {"mean_total_reward": fit.result.mean_total_reward, "env_steps": env_steps}
    record = {"metrics": metrics, "artifacts": artifacts, "extra_params": {}, "summary": summary}
    if resume is not None:
        record["resumed_from_env_steps"] = int(resume["module"]["env_steps"])
    return record


def resume_point(job: Job, path: Path | None, quiet: bool = False) -> dict | None:
    """The checkpoint at ``path`` if it is one of ``job``'s run, else None (start from zero).

    It must name the job's algorithm (no other plug-in is imported), resolve to the job's config
    hash, carry the metrics logged before it and have been written under this checkout's version
    of the family (a checkpoint without ``task_version`` is version 1); one of another version
    is refused with a note on stderr.

    Args:
        job: the learned run about to train.
        path: its checkpoint path (None: the job has none).
        quiet: no note on a refused version (the driver counting resumable runs).
    """
    if path is None or not path.is_file():
        return None
    from benchmark.run.checkpoints import read_checkpoint
    from benchmark.run.config import load_resolved_config
    from benchmark.run.tracking import current_version, task_tags
    from tasks import ConfigError

    try:
        checkpoint = read_checkpoint(path)
        if checkpoint.get("algorithm") != job.name or "metrics" not in checkpoint:
            return None
        spec = load_resolved_config(job.name, str(checkpoint["task"]), checkpoint["config"])
    except (ConfigError, KeyError, TypeError):
        return None
    if spec.config_hash() != job.config_hash:
        return None
    made = {"task": job.task, "task_version": str(checkpoint.get("task_version", "1"))}
    if not current_version(made):
        if quiet:
            return None
        print(
            f"note: {job.label}: not resuming {path}: it was written at {job.task} version "
            f"{made['task_version']}, this checkout's {job.task} is version "
            f"{task_tags(job.task)['task_version']}; training from the start",
            file=sys.stderr,
        )
        return None
    return checkpoint


def _evaluate(job: Job) -> dict[str, Any]:
    import json

    from benchmark.run.evaluation import evaluation_metrics
    from benchmark.run.policies import evaluate_reference

    payload = evaluate_reference(job.name, job.task, job.overrides, job.trials, job.eval_seed)
    stamp = int(time.time() * 1000)
    sections = (("eval", payload), ("heldout", payload.get("heldout") or {}))
    metrics = [
        (key, float(value), 0, stamp)
        for prefix, values in sections
        for key, value in evaluation_metrics(values, prefix).items()
    ]
    tuned = payload.get("tuned") or {}
    artifacts = {
        "config.yaml": job.config_yaml.encode(),
        "evaluation.json": json.dumps(payload, indent=2).encode(),
    }
    extra = {f"tuned.{key}": value for key, value in tuned.items()}
    summary = {"mean_total_reward": payload["mean_total_reward"], "env_steps": 0}
    return {"metrics": metrics, "artifacts": artifacts, "extra_params": extra, "summary": summary}


def _artifact_path(path: Path, folder: str | None) -> str:
    return f"{folder}/{path.name}" if folder else path.name
