"""Bringing a run back: continue an interrupted run in its MLflow run (``run --resume``), and load
a trained module from a checkpoint file or a run id (``evaluate``), never running code from either.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from baselines import MetaRLAlgorithm
from benchmark.run.checkpoints import build_from_checkpoint, read_checkpoint
from benchmark.run.config import load_resolved_config
from benchmark.run.runner import CHECKPOINT_ARTIFACT, RESUME_ARTIFACT, train_logged
from benchmark.run.tracking import HOST, PID, RunLogger, download_artifact, pid_running
from tasks import ConfigError, require


def resume_run(
    run_id: str, tracking_uri: str, progress: bool = True, plugin: str | None = None
) -> dict[str, Any]:
    """Continue a KILLED or FAILED run (or a RUNNING one whose process is gone) in the same
    MLflow run, from its last resumable checkpoint; metrics continue at the right env steps.

    Args:
        run_id: the run to continue.
        tracking_uri: the MLflow store that holds it.
        progress: show the run's progress.
        plugin: the ``module:Class`` the user named, if the run trained a plug-in algorithm.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        raise ConfigError(f"no run '{run_id}' in {tracking_uri} ({first_line(error)})") from None
    check_resumable(run)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = download_artifact(tracking_uri, run_id, RESUME_ARTIFACT, Path(tmp))
        except (MlflowException, OSError):
            raise ConfigError(
                f"run '{run_id}' has no resumable checkpoint ({RESUME_ARTIFACT}): it stopped "
                "before its first one; start it again with 'run'"
            ) from None
        checkpoint = read_checkpoint(local)
    build_from_checkpoint(checkpoint, plugin)  # the algorithm must resolve before anything runs
    spec = load_resolved_config(checkpoint["algorithm"], checkpoint["task"], checkpoint["config"])
    require(
        spec.config_hash() == run.data.tags.get("config_hash"),
        f"the checkpoint of run '{run_id}' does not hold the run's config",
    )
    client.update_run(run_id, "RUNNING")
    client.set_tag(run_id, HOST, socket.gethostname())
    client.set_tag(run_id, PID, str(os.getpid()))
    logger = RunLogger(tracking_uri=tracking_uri, run_id=run_id)
    return train_logged(spec, logger, progress, resume=checkpoint)


def check_resumable(run: Any) -> None:
    """Refuse a run that finished, or one still RUNNING whose owning process lives (or whose
    owner is on another host, where this process cannot tell)."""
    status, tags, run_id = run.info.status, run.data.tags, run.info.run_id
    require(status != "FINISHED", f"run '{run_id}' already FINISHED; nothing to resume")
    if status != "RUNNING":
        return
    host, pid = tags.get(HOST), int(tags.get(PID, "0") or 0)
    require(
        host == socket.gethostname(),
        f"run '{run_id}' is RUNNING on host '{host}'; resume it there",
    )
    require(
        not pid_running(pid), f"run '{run_id}' is still RUNNING in process {pid}; stop it first"
    )


def load_module(reference: str, tracking_uri: str, plugin: str | None = None) -> MetaRLAlgorithm:
    """Load a trained module from a checkpoint path or an MLflow run id, without running code.

    Args:
        reference: a ``.ckpt`` path, or the id of a run that logged ``checkpoints/final.ckpt``.
        tracking_uri: the MLflow store that holds the run.
        plugin: the ``module:Class`` the user named, which a checkpoint of a plug-in needs.
    """
    path = Path(reference)
    if path.is_file():
        return _load_checkpoint(path, plugin)
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = download_artifact(tracking_uri, reference, CHECKPOINT_ARTIFACT, Path(tmp))
        except (MlflowException, OSError) as error:
            raise ConfigError(
                f"'{reference}' is not a strategy, a checkpoint file or a run id with a "
                f"checkpoint in {tracking_uri} ({first_line(error)})"
            ) from None
        return _load_checkpoint(local, plugin)


def _load_checkpoint(path: Path, plugin: str | None) -> MetaRLAlgorithm:
    module = build_from_checkpoint(read_checkpoint(path), plugin)
    module.eval()
    return module


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
