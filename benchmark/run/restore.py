"""Bringing a run back: continue an interrupted run in its MLflow run (``run --resume``), run a
stored run's resolved config again (``run --from``), and load a trained module from a checkpoint
file or a run id (``evaluate``), never running code from any of them.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from baselines import MetaRLAlgorithm
from benchmark.run.checkpoints import build_from_checkpoint, read_checkpoint, resolve_algorithm
from benchmark.run.config import RunSpec, load_resolved_config
from benchmark.run.runner import CHECKPOINT_ARTIFACT, RESUME_ARTIFACT, train_logged
from benchmark.run.tracking import (
    HOST,
    PID,
    RunLogger,
    current_version,
    download_artifact,
    git_tags,
    pid_running,
    task_tags,
)
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


def rerun_spec(
    source: str,
    tracking_uri: str,
    algo_name: str | None = None,
    task_name: str | None = None,
    plugin: str | None = None,
) -> tuple[RunSpec, list[str]]:
    """The resolved config a stored run used, to run it again exactly (``run --from``).

    Args:
        source: a run id (its ``config.yaml`` artifact and its algorithm and task tags), or a
            ``config.yaml`` file, which then needs ``algo_name`` and ``task_name``.
        tracking_uri: the MLflow store that holds a run id.
        algo_name: the algorithm of a config file.
        task_name: the family of a config file.
        plugin: the ``module:Class`` the user named, if the run trained a plug-in algorithm.

    Returns:
        the validated spec, and notes on what differs from the stored run (its commit).
    """
    path, notes = Path(source), []
    if path.is_file():
        require(algo_name and task_name, f"run --from {source} needs ALGO and TASK before the file")
        config = _read_config(path)
    else:
        run = _get_run(source, tracking_uri)
        tags = run.data.tags
        algo_name, task_name = tags.get("algorithm"), tags.get("task")
        require(algo_name and task_name, f"run '{source}' has no algorithm and task tags")
        with tempfile.TemporaryDirectory() as tmp:
            config = _read_config(_download(source, tracking_uri, "config.yaml", Path(tmp)))
        notes += commit_notes(tags)
    if ":" in algo_name:
        resolve_algorithm(algo_name, plugin)  # a plug-in is imported only when named
    return load_resolved_config(algo_name, task_name, config), notes


def commit_notes(tags: dict[str, str]) -> list[str]:
    """Lines for what differs from this checkout: the stored run's commit (or a dirty tree) and
    its family's version."""
    stored, now, notes = tags.get("git_commit", "unknown"), git_tags(), []
    if stored != now["git_commit"]:
        notes.append(
            f"note: the run was made at commit {stored[:12]}, this is {now['git_commit'][:12]}"
        )
    elif tags.get("git_dirty") == "true" or now["git_dirty"] == "true":
        notes.append("note: the run's or this checkout's tree had uncommitted changes")
    if not current_version(tags):
        task = tags.get("task", "?")
        notes.append(
            f"note: the run was made at {task} version {tags.get('task_version', '1')}, "
            f"this checkout's {task} is version {task_tags(task)['task_version']}"
        )
    return notes


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = OmegaConf.to_container(OmegaConf.load(path))
    except Exception as error:  # an unreadable file is the user's bad input
        raise ConfigError(f"cannot read the config '{path}': {first_line(error)}") from None
    require(isinstance(config, dict), f"the config '{path}' is not a mapping of sections")
    return config


def _get_run(run_id: str, tracking_uri: str) -> Any:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return MlflowClient(tracking_uri).get_run(run_id)
    except MlflowException as error:
        raise ConfigError(f"no run '{run_id}' in {tracking_uri} ({first_line(error)})") from None


def _download(run_id: str, tracking_uri: str, artifact: str, folder: Path) -> Path:
    from mlflow.exceptions import MlflowException

    try:
        return download_artifact(tracking_uri, run_id, artifact, folder)
    except (MlflowException, OSError) as error:
        raise ConfigError(
            f"run '{run_id}' has no {artifact} to rerun ({first_line(error)})"
        ) from None
