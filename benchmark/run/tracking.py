"""MLflow tracking: where runs go, how they are tagged, and how their artifacts come back.

The default store is embedded sqlite (``sqlite:///<cwd>/mlflow.db``) with artifacts beside it in
``<cwd>/mlartifacts``. ``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` selects another store, such as
an ``mlflow server`` over HTTP.

MLflow is imported where it is used: sweep workers import this module but never write to a store,
and importing MLflow costs each of them over a second.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import MLFlowLogger

DEFAULT_EXPERIMENT = "metarl-bench"
ROLE, SWEEP = "metarl.role", "metarl.sweep"
"""Tags of a sweep's runs: ``parent`` or ``child``, and the sweep's name."""
HOST, PID, BEAT = "metarl.host", "metarl.pid", "metarl.heartbeat"
"""Tags of the process that owns a run (a single run's trainer, a sweep's driver) and the time of
the driver's last heartbeat."""
GRID_ARTIFACT = "sweep/grid.json"
"""The sweep parent's artifact listing every run of its grid."""
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
CUSTOM_MODEL_KIND = "custom_model_development"
EXPERIMENT_KIND = {EXPERIMENT_KIND_TAG: CUSTOM_MODEL_KIND}
"""The tag that marks an experiment as model training for the MLflow UI (3.x)."""
SUITE_ROOT = Path(__file__).resolve().parents[2]


def resolve_tracking_uri(cli_uri: str | None = None) -> str:
    """The tracking URI: the CLI flag, else ``MLFLOW_TRACKING_URI``, else sqlite in the cwd."""
    if cli_uri:
        return cli_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Artifacts beside a sqlite database; None lets a server choose."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db_path = Path(tracking_uri.removeprefix("sqlite:///"))
    return (db_path.parent / "mlartifacts" / experiment).as_uri()


def git_tags() -> dict[str, str]:
    """The suite's git commit and dirty flag ("unknown" outside a git checkout)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=SUITE_ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    return {"git_commit": commit, "git_dirty": str(dirty).lower()}


def task_tags(task: str) -> dict[str, str]:
    """The tags naming a run's family and the family's semantics version (``task_version``).

    Args:
        task: a registered family name.
    """
    from tasks import get_task_class

    return {"task": task, "task_version": str(get_task_class(task).version)}


def current_version(tags: dict[str, str]) -> bool:
    """Whether a run's family version (tag ``task_version``, 1 when absent) is this checkout's.

    A sweep reruns a run of an older version of its family; ``run --from`` says it differs.

    Args:
        tags: the run's tags.
    """
    from tasks import TASKS

    task = tags.get("task", "")
    return tags.get("task_version", "1") == str(TASKS[task].version if task in TASKS else 1)


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested dict into dotted keys (the run's MLflow params)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class RunLogger(MLFlowLogger):
    """Lightning's MLflow logger, but the run's final status is set by the runner, not by ``fit``.

    ``Trainer.fit`` calls ``finalize("success")`` when training ends; the run then still has its
    evaluation and artifacts to come, so marking it FINISHED there would be premature.
    """

    def finalize(self, status: str = "success") -> None:
        """Leave the run open; :func:`end_run` closes it."""

    def end_run(self, status: str) -> None:
        """Mark the run FINISHED, FAILED or KILLED."""
        self.experiment.set_terminated(self.run_id, status)


@contextmanager
def store_lock(tracking_uri: str) -> Iterator[None]:
    """Serialise first use of a sqlite store across processes (a no-op for servers).

    Two processes opening a fresh sqlite store at once both run MLflow's schema migrations and
    corrupt it; two creating the same experiment collide. A lock file beside the database
    makes both one-at-a-time.
    """
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    db_path = Path(tracking_uri.removeprefix("sqlite:///"))
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with open(db_path.with_name(db_path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_experiment(tracking_uri: str, experiment: str) -> str:
    """Create the store (if new) and the experiment (if absent) safely; return its id.

    The experiment is tagged as model training (:data:`EXPERIMENT_KIND`), the kind by which MLflow
    3's UI chooses between its runs table and its GenAI view. (UIs with a GenAI / Model training
    switch in the sidebar, such as 3.17's, follow the switch or ``?workflowType=machine_learning``
    instead.) An existing experiment is tagged too, unless its kind was chosen explicitly (not one
    the UI inferred).
    """
    from mlflow.tracking import MlflowClient

    with store_lock(tracking_uri):
        client = MlflowClient(tracking_uri)
        found = client.get_experiment_by_name(experiment)
        if found is None:
            location = artifact_location(tracking_uri, experiment)
            return client.create_experiment(experiment, location, tags=EXPERIMENT_KIND)
        kind = found.tags.get(EXPERIMENT_KIND_TAG, "no_inferred_type")
        if kind.endswith("_inferred") or kind == "no_inferred_type":
            client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, CUSTOM_MODEL_KIND)
        return found.experiment_id


def make_logger(
    tracking_uri: str, experiment: str, run_name: str, tags: dict[str, str]
) -> RunLogger:
    """A :class:`RunLogger` whose run exists (created now) in ``experiment``."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    ensure_experiment(tracking_uri, experiment)
    logger = RunLogger(
        experiment_name=experiment, tracking_uri=tracking_uri, run_name=run_name, tags=tags
    )
    _ = logger.run_id
    return logger


def download_artifact(tracking_uri: str, run_id: str, path: str, destination: Path) -> Path:
    """Fetch one artifact of a run into ``destination``; return its local path."""
    from mlflow.tracking import MlflowClient

    # MLflow's download bar would break the one-line report of a command's error on stderr.
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    client = MlflowClient(tracking_uri)
    return Path(client.download_artifacts(run_id, path, str(destination)))


def pid_running(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, killed but not reaped, does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():  # a zombie (killed, not yet reaped) is not running
        return stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    return True


def state_folder(tracking_uri: str) -> Path:
    """Where a driver keeps checkpoints and pending results: ``.metarl`` beside a sqlite store,
    else in the working directory.

    Args:
        tracking_uri: the MLflow store.
    """
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri.removeprefix("sqlite:///")).parent / ".metarl"
    return Path.cwd() / ".metarl"


def safe_name(name: str) -> str:
    """``name`` as one path component (characters other than letters, digits, ``._-`` become _).

    Args:
        name: an experiment or sweep name.
    """
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "_"
