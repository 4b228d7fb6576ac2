"""A sweep driver's writes to the tracking store, kept on disk while the store is away.

Each finished job becomes an entry: everything its MLflow run still needs (the run itself if it
could not be created when the job started, params, tags, metrics, artifacts, the final status).
The driver writes entries to the store in order. An entry the store could not take is kept on
disk as a JSON file of plain data (artifacts in base64, never pickle), and so is every entry after
it until the store is back; the driver retries them while the sweep runs, removes each file once
written, and the next invocation of the sweep writes what is left before deciding what to rerun.
A result not yet written when the driver itself dies is not kept: its run is rerun.

Only connectivity failures and 5xx answers mean the store is away (:func:`is_transient`); any other
error, such as a refused value, is raised. :func:`tune_http_client` turns MLflow's own HTTP retries
(minutes by default) off, so that :func:`retry` decides how long to wait.

Writing an entry twice is harmless: tags and params take the same values again, MLflow drops a
metric identical to one it has (key, value, step and timestamp), and artifacts are replaced.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tasks import ConfigError

T = TypeVar("T")
HTTP_CLIENT = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
"""MLflow's HTTP client settings under a sweep driver: one try per request, 30 s per request."""
FIRST_DELAY, MAX_DELAY = 0.5, 8.0
"""Seconds between retries: doubling from the first, at most the second."""


def tune_http_client() -> None:
    """Set MLflow's HTTP retries off (see :data:`HTTP_CLIENT`), for this process."""
    os.environ.update(HTTP_CLIENT)


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` means the store is away: no connection, a timeout or a 5xx answer.

    Args:
        error: what a tracking call raised (its causes are looked at too).
    """
    import requests
    from mlflow.exceptions import MlflowException, RestException

    away = (requests.ConnectionError, requests.Timeout, requests.exceptions.RetryError)
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, (*away, ConnectionError, TimeoutError)):
            return True
        if isinstance(link, requests.HTTPError):
            response = link.response
            if response is not None and response.status_code >= 500:
                return True
        if isinstance(link, RestException) and link.get_http_status_code() >= 500:
            return True
        if isinstance(link, MlflowException) and re.search(r"error code 5\d\d", str(link)):
            return True
        link = link.__cause__ or link.__context__
    return False


def retry(action: Callable[[], T], patience: float) -> T:
    """Call ``action``; while the store is away, call it again with growing pauses.

    Args:
        action: one or more tracking calls (safe to repeat).
        patience: seconds after which the last transient error is raised (0: one try).
    """
    deadline, delay = time.monotonic() + patience, FIRST_DELAY
    while True:
        try:
            return action()
        except Exception as error:
            if not is_transient(error) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(2 * delay, MAX_DELAY)


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type's name if it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def make_entry(
    run_id: str | None,
    status: str,
    *,
    create: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    metrics: list[Any] | None = None,
    artifacts: dict[str, bytes] | None = None,
    remove: str = "",
) -> dict[str, Any]:
    """An entry: what one run still needs written, as plain data.

    Args:
        run_id: the run (None: created from ``create`` when the entry is written).
        status: the run's final status.
        create: ``experiment_id``, ``run_name`` and ``tags`` of the run to create.
        params: params to log (strings).
        tags: tags to set.
        metrics: (key, value, step, timestamp in ms) rows.
        artifacts: {relative path: content}.
        remove: a file to delete once the run is FINISHED in the store (its checkpoint).
    """
    files = {
        path: base64.b64encode(data).decode("ascii") for path, data in (artifacts or {}).items()
    }
    return {
        "run_id": run_id,
        "status": status,
        "create": create,
        "params": params or {},
        "tags": tags or {},
        "metrics": [list(row) for row in metrics or []],
        "artifacts": files,
        "remove": remove,
    }


def write_entry(client: Any, entry: dict[str, Any], created: Callable[[], None]) -> None:
    """Write one entry to the store (safe to repeat after a failure part-way).

    Args:
        client: an ``MlflowClient``.
        entry: from :func:`make_entry`; its ``run_id`` is set when the run is created here.
        created: called once the run exists (to keep its id before anything else can fail).
    """
    from mlflow.entities import Metric, Param, RunTag

    if not entry["run_id"]:
        create = entry["create"]
        run = client.create_run(
            create["experiment_id"], run_name=create["run_name"], tags=create["tags"]
        )
        entry["run_id"] = run.info.run_id
        created()
    run_id = entry["run_id"]
    params = [Param(key, value) for key, value in entry["params"].items()]
    tags = [RunTag(key, value) for key, value in entry["tags"].items()]
    metrics = [Metric(key, value, stamp, step) for key, value, step, stamp in entry["metrics"]]
    for rows, size, name in (
        (params, 100, "params"),
        (tags, 100, "tags"),
        (metrics, 1000, "metrics"),
    ):
        for start in range(0, len(rows), size):
            client.log_batch(run_id, **{name: rows[start : start + size]})
    if entry["artifacts"]:
        with tempfile.TemporaryDirectory() as tmp:
            for relative, text in entry["artifacts"].items():
                path = Path(tmp) / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(base64.b64decode(text))
            client.log_artifacts(run_id, tmp)
    client.set_terminated(run_id, entry["status"])
    if entry["status"] == "FINISHED" and entry["remove"]:
        Path(entry["remove"]).unlink(missing_ok=True)


class Outbox:
    """Entries not yet in the store; while the store is away, one JSON file each in ``folder``
    (read back when the next driver starts).

    Args:
        folder: where this sweep's entries are kept (created when the first one arrives).
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.entries: dict[str, dict[str, Any]] = {}
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                self.entries[path.stem] = json.loads(path.read_text())
            except (OSError, ValueError) as error:
                raise ConfigError(f"cannot read the kept result '{path}': {error}") from None
        self.on_disk = set(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, key: str, entry: dict[str, Any]) -> None:
        """Queue ``entry`` after every entry before it (on disk at once while some wait there).

        Args:
            key: a name for its file (a run's config hash), unique among pending entries.
            entry: from :func:`make_entry`.
        """
        entry["order"] = time.time_ns()
        self.entries[key] = entry
        if self.on_disk:
            self._save(key)

    def flush(self, client: Any, patience: float) -> bool:
        """Write the entries in order; stop at the first the store is away for.

        Args:
            client: an ``MlflowClient``.
            patience: seconds each entry is retried for (see :func:`retry`).

        Returns:
            whether every entry was written.
        """
        for key in sorted(self.entries, key=lambda name: self.entries[name].get("order", 0)):
            write = functools.partial(write_entry, client, self.entries[key])
            try:
                retry(functools.partial(write, functools.partial(self._created, key)), patience)
            except Exception as error:
                if not is_transient(error):
                    raise
                for waiting in self.entries:
                    self._save(waiting)
                return False
            del self.entries[key]
            if key in self.on_disk:
                self.on_disk.discard(key)
                (self.folder / f"{key}.json").unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.folder.rmdir()  # nothing is pending any more
        return True

    def _created(self, key: str) -> None:
        if key in self.on_disk:  # the file must hold the new run's id
            self._save(key)

    def _save(self, key: str) -> None:
        self.on_disk.add(key)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{key}.json"
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(self.entries[key]))
        os.replace(partial, path)
