"""``metarl-bench sweep``: run a grid of runs in parallel, resumably, under one MLflow parent run.

The driver is the only process that writes to the tracking store. For every job it starts, it
creates a child run (RUNNING, tagged ``mlflow.parentRunId``); the job trains in a worker (a local
process or a Ray task) and returns its metrics and artifacts; the driver logs them and marks the
child FINISHED or FAILED. Parallel workers never touch the sqlite file, so they cannot lock it.

Resume: a run's identity is the hash of its resolved config. A new invocation skips hashes that
already have a FINISHED child in the experiment and runs the rest. A driver records its host, pid
and a heartbeat on its parent run; a parent still RUNNING whose driver is gone (``kill -9``) is
marked KILLED, with its RUNNING children, before the rerun starts. Its workers have exited on their
own, and nothing of theirs was ever marked FINISHED.

A learned job trains with a resumable checkpoint at ``.metarl/checkpoints/<experiment>/<config
hash>.ckpt`` (``.metarl`` beside a sqlite store, else in the working directory). A rerun of a job
whose worker or driver died continues from it (its child run is tagged
``metarl.resumed_from_env_steps``), and the file is deleted once the run is FINISHED in the store.
On a multi-machine Ray cluster the checkpoint is found only if that path is on a filesystem that
every node shares.

A ledger (``sweep FILE --ledger PATH``, a run-records CSV: :mod:`benchmark.reporting.records`)
carries the resume across stores and machines. A job whose (algorithm, config hash) the ledger
holds counts as finished; every run that finishes is merged into the ledger once the store has its
result, and the grid's runs that are FINISHED in the store but not yet in the ledger (an invocation
stopped before it merged them) are merged when the next invocation starts. A committed ledger is
then the campaign's state: a fresh clone on another machine runs only what it lacks.

A tracking server that goes away loses nothing: a result it could not take is kept on disk in
``.metarl/pending/<experiment>/<sweep>/`` until the store has it (:mod:`benchmark.sweeps.outbox`).
The sweep goes on while the server is away and writes what is pending when it returns; the next
invocation writes it first. If the server is still away when the sweep ends, the driver stops with
one line saying what is pending and where (exit status 75).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlflow.entities import Param
from mlflow.tracking import MlflowClient

from benchmark.reporting.records import (
    ledger_keys,
    merge_records,
    read_ledger,
    records_from_store,
)
from benchmark.run.tracking import (
    BEAT,
    GRID_ARTIFACT,
    HOST,
    PID,
    ROLE,
    SWEEP,
    current_version,
    ensure_experiment,
    git_tags,
    safe_name,
    state_folder,
    task_tags,
)
from benchmark.sweeps.grid import Sweep, load_sweep
from benchmark.sweeps.launchers import Launcher, check_launcher, make_launcher
from benchmark.sweeps.liveness import check_drivers, reap_dead_drivers, search_all
from benchmark.sweeps.outbox import (
    Outbox,
    first_line,
    is_transient,
    make_entry,
    retry,
    tune_http_client,
)
from benchmark.sweeps.progress import SweepProgress
from benchmark.sweeps.worker import Job, resume_point

HEARTBEAT_SECONDS = 30.0
RESUMED = "metarl.resumed_from_env_steps"
EXIT_FAILED_RUNS, EXIT_PENDING, EXIT_INTERRUPTED = 1, 75, 130
START_PATIENCE = 30.0
"""Seconds the store may be away when a sweep starts (then nothing runs)."""
RECORD_PATIENCE = 10.0
"""Seconds a result is retried while the workers wait, before it is kept for later."""
END_PATIENCE = 120.0
"""Seconds the sweep waits at its end for a store that is away, before it stops."""
AWAY_POLL_SECONDS = 5.0
"""While results are pending, how often the driver tries the store again."""


def sweep_command(
    source: str | Sweep,
    overrides: list[str],
    launcher: str,
    workers: int | None,
    tracking_uri: str,
    ray_address: str | None = None,
    results_dir: Path = Path("results"),
    started: Launcher | None = None,
    render: Callable[[str, str, Path], object] | None = None,
    ledger: Path | None = None,
) -> int:
    """Validate a sweep, run what is not finished yet, then render its table.

    Args:
        source: a built-in sweep name, a YAML path, or a sweep already built (``compare``'s).
        overrides: ``key=value`` (sweep keys or run keys for every run).
        launcher: ``local`` or ``ray``.
        workers: parallel runs (default: the cores, or the Ray cluster's CPUs).
        tracking_uri: the MLflow store.
        ray_address: a Ray cluster to join (Ray only).
        results_dir: where ``<name>.md``, ``<name>.csv`` and the plots go.
        started: a launcher already started by the caller, used instead of making one (the
            caller closes it).
        render: prints and writes the table of (experiment, tracking URI, results directory)
            once the runs are done (None: no table).
        ledger: a run-records CSV: its runs are skipped and each finished run is merged into it.

    Returns:
        0 when every run finished, 1 when some failed, 75 when the store is away (results that
        it could not take are kept on disk), 130 when interrupted.
    """
    check_launcher(launcher, workers, ray_address)
    sweep = source if isinstance(source, Sweep) else load_sweep(source, overrides)
    for note in sweep.notes:  # task entries left out for a missing extra
        print(note, file=sys.stderr)
    try:
        driver = SweepDriver(sweep, tracking_uri, ledger)
        todo = driver.prepare()
    except Exception as error:
        if not is_transient(error):
            raise
        print(
            f"error: the tracking store {tracking_uri} is unreachable ({first_line(error)}); "
            "nothing was run",
            file=sys.stderr,
        )
        return EXIT_PENDING
    status = driver.execute(todo, lambda: started or make_launcher(launcher, workers, ray_address))
    if status not in (EXIT_INTERRUPTED, EXIT_PENDING) and render is not None:
        render(sweep.experiment, tracking_uri, results_dir)
    return status


class SweepDriver:
    """Creates the parent and child runs, dispatches jobs and records their results.

    Args:
        sweep: the validated sweep.
        tracking_uri: the MLflow store.
        ledger: a run-records CSV that carries the resume across stores (None: the store only).
    """

    def __init__(self, sweep: Sweep, tracking_uri: str, ledger: Path | None = None):
        self.in_ledger = ledger_keys(read_ledger(ledger)) if ledger is not None else set()
        """(algorithm, config hash) of the runs the ledger holds (read first, so a file that is
        not a ledger stops the sweep before the store is touched)."""
        self.unmerged: set[str] = set()
        """Config hashes of runs FINISHED in the store and not yet merged into the ledger."""
        tune_http_client()
        self.sweep, self.tracking_uri, self.ledger = sweep, tracking_uri, ledger
        self.client = MlflowClient(tracking_uri)
        self.tags = git_tags()
        self.experiment_id = retry(
            lambda: ensure_experiment(tracking_uri, sweep.experiment), START_PATIENCE
        )
        root = state_folder(tracking_uri)
        self.checkpoints = root / "checkpoints" / safe_name(sweep.experiment)
        self.outbox = Outbox(root / "pending" / safe_name(sweep.experiment) / safe_name(sweep.name))
        self.parent_id = ""
        self.last_beat = self.last_try = 0.0
        self.away = False
        """Whether the store was away at the last write (results wait in the outbox)."""
        self.open_runs: set[str] = set()
        """Child runs created and not yet terminated (KILLED if the driver is interrupted)."""

    def prepare(self) -> list[Job]:
        """Write what an earlier invocation kept, reap dead drivers' runs, then return the jobs
        without a FINISHED run (a learned job with its checkpoint path)."""
        check_drivers(self.client, self.experiment_id, self.sweep.name)  # none of this sweep
        if len(self.outbox):
            kept = len(self.outbox)
            if not self.outbox.flush(self.client, START_PATIENCE):
                raise ConnectionError(
                    f"{len(self.outbox)} results of an earlier invocation are still pending in "
                    f"{self.outbox.folder}"
                )
            print(f"wrote {kept} results kept by an earlier invocation", file=sys.stderr)
        # Asked again: the kept results may have finished some of the runs that were RUNNING.
        live, dead = check_drivers(self.client, self.experiment_id, self.sweep.name)
        reap_dead_drivers(self.client, self.experiment_id, live, dead)
        finished = {
            run.data.tags.get("config_hash")
            for run in self._children("FINISHED")
            if current_version(run.data.tags)
        }
        if self.ledger is not None:
            self.unmerged = {
                job.config_hash
                for job in self.sweep.jobs
                if job.config_hash in finished and (job.name, job.config_hash) not in self.in_ledger
            }
        caught_up = len(self.unmerged)
        self._merge_ledger()
        recorded = {
            job.config_hash
            for job in self.sweep.jobs
            if (job.name, job.config_hash) in self.in_ledger
        }
        finished |= recorded
        todo = [job for job in self.sweep.jobs if job.config_hash not in finished]
        # Long runs first: training before the quick classical evaluations fills the workers.
        todo.sort(key=lambda job: job.kind != "learned")
        for job in self.sweep.jobs:
            path = self.checkpoints / f"{job.config_hash}.ckpt"
            if job.config_hash in finished:
                path.unlink(missing_ok=True)  # its driver stopped before deleting it
            elif job.kind == "learned":
                job.checkpoint = str(path)
        resumable = sum(
            resume_point(job, Path(job.checkpoint), quiet=True) is not None
            for job in todo
            if job.checkpoint
        )
        skipped = len(self.sweep.jobs) - len(todo)
        print(
            f"sweep '{self.sweep.name}': {len(self.sweep.jobs)} runs in experiment "
            f"'{self.sweep.experiment}'; {skipped} already finished"
            + (f" ({len(recorded)} in the ledger {self.ledger}" if self.ledger else "")
            + (f", {caught_up} of them merged into it from the store" if caught_up else "")
            + (")" if self.ledger else "")
            + f", {len(todo)} to run"
            + (f" ({resumable} from a checkpoint)" if resumable else ""),
            file=sys.stderr,
        )
        self._start_parent(len(todo), skipped)
        return todo

    def execute(self, todo: list[Job], make: Any) -> int:
        """Run ``todo`` through a launcher, then write what is pending; return the exit status.

        Args:
            todo: the jobs without a FINISHED run.
            make: a callable that starts the launcher (called only if there is work).

        Returns:
            0, 1 (some runs failed), 75 (the store is still away: results are kept on disk) or
            130 (interrupted).
        """
        status, code, cancel = "FAILED", EXIT_FAILED_RUNS, True
        launcher = None
        try:
            failed = 0
            if todo:
                launcher = make()
                print(f"running on {launcher.description}", file=sys.stderr)
                failed = self._loop(launcher, todo)
            status, code = ("FAILED", EXIT_FAILED_RUNS) if failed else ("FINISHED", 0)
            cancel = False
        except KeyboardInterrupt:
            status, code = "KILLED", EXIT_INTERRUPTED
            print("interrupted: running jobs were stopped and marked KILLED", file=sys.stderr)
        finally:  # on an error too: stop the workers, and the parent run is not FINISHED
            if launcher is not None:
                launcher.close(cancel=cancel)
            self.outbox.add(f"parent-{self.parent_id}", make_entry(self.parent_id, status))
            written = self._flush(0.0 if cancel else END_PATIENCE)
            if written:
                self._merge_ledger()
        if written:
            return code
        print(
            f"the tracking store {self.tracking_uri} is unreachable: {len(self.outbox)} results "
            f"are kept in {self.outbox.folder}; the next invocation of this sweep writes them",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED if code == EXIT_INTERRUPTED else EXIT_PENDING

    def _loop(self, launcher: Launcher, todo: list[Job]) -> int:
        pending: deque[Job] = deque(todo)
        inflight: dict[Any, tuple[Job, str | None]] = {}
        failed = 0
        with SweepProgress(self.sweep.name, len(todo)) as progress:
            try:
                while pending or inflight:
                    while pending and self._fits(pending[0], inflight, launcher.slots):
                        job = pending.popleft()
                        run_id = self._start_child(job)
                        inflight[launcher.submit(job)] = (job, run_id)
                    timeout = AWAY_POLL_SECONDS if len(self.outbox) else HEARTBEAT_SECONDS
                    for handle in launcher.wait(list(inflight), timeout):
                        job, run_id = inflight.pop(handle)
                        record = launcher.result(handle)
                        self.outbox.add(job.config_hash, self._entry(job, run_id, record))
                        self.open_runs.discard(run_id or "")
                        failed += record["status"] != "FINISHED"
                        if record["status"] == "FINISHED" and self.ledger is not None:
                            self.unmerged.add(job.config_hash)
                        progress.finished(job, record)
                    self._sync()
                    if not len(self.outbox):
                        self._merge_ledger()
                    self._heartbeat()
            except BaseException:
                self._kill_open_runs()
                raise
        return failed

    @staticmethod
    def _fits(job: Job, inflight: dict[Any, tuple[Job, str | None]], slots: int) -> bool:
        used = sum(min(other.cpus, slots) for other, _ in inflight.values())
        return used + min(job.cpus, slots) <= slots

    def _children(self, status: str) -> list[Any]:
        query = f"tags.`{ROLE}` = 'child' and attributes.status = '{status}'"
        return search_all(self.client, self.experiment_id, query)

    def _start_parent(self, to_run: int, skipped: int) -> None:
        tags = {**self.tags, ROLE: "parent", SWEEP: self.sweep.name, HOST: socket.gethostname()}
        tags.update({PID: str(os.getpid()), BEAT: str(time.time())})
        tags.update({"metarl.to_run": str(to_run), "metarl.skipped": str(skipped)})
        run = self.client.create_run(
            self.experiment_id, run_name=f"sweep {self.sweep.name}", tags=tags
        )
        self.parent_id = run.info.run_id
        self.last_beat = time.time()
        grid = [
            {"config_hash": job.config_hash, "kind": job.kind, "name": job.name, "task": job.task}
            | {"task_params": job.task_params, "seed": job.seed}
            for job in self.sweep.jobs
        ]
        self.client.log_dict(self.parent_id, grid, GRID_ARTIFACT)
        self.client.log_dict(self.parent_id, self.sweep.resolved, "sweep/sweep.yaml")

    def _child_tags(self, job: Job) -> dict[str, str]:
        tags = {**self.tags, "mlflow.parentRunId": self.parent_id, ROLE: "child"}
        tags.update({SWEEP: self.sweep.name, "config_hash": job.config_hash, "kind": job.kind})
        return tags | {"algorithm": job.name, **task_tags(job.task), "setting": job.setting}

    def _start_child(self, job: Job) -> str | None:
        """Create the job's RUNNING child run with its params; None while the store is away
        (the run is then created with the job's result)."""
        if self.away:
            return None
        tags = self._child_tags(job)
        try:
            run = retry(
                lambda: self.client.create_run(self.experiment_id, run_name=job.label, tags=tags),
                RECORD_PATIENCE,
            )
        except Exception as error:
            if not is_transient(error):
                raise
            self._went_away(error)
            return None
        self.open_runs.add(run.info.run_id)
        params = [Param(key, _param_value(value)) for key, value in job.params.items()]
        try:
            for start in range(0, len(params), 100):
                self.client.log_batch(run.info.run_id, params=params[start : start + 100])
        except Exception as error:  # the result's entry logs them again
            if not is_transient(error):
                raise
            self._went_away(error)
        return run.info.run_id

    def _entry(self, job: Job, run_id: str | None, record: dict[str, Any]) -> dict[str, Any]:
        """What the job's child run still needs written: its result, params and status."""
        tags = {"metarl.worker": str(record.get("worker", "?"))}
        tags["metarl.seconds"] = f"{record.get('seconds', float('nan')):.1f}"
        if "resumed_from_env_steps" in record:
            tags[RESUMED] = str(record["resumed_from_env_steps"])
        params = {**job.params, **record.get("extra_params", {})}
        create = None
        if run_id is None:
            create = {"experiment_id": self.experiment_id, "run_name": job.label}
            create["tags"] = self._child_tags(job)
        common = {"create": create, "params": {k: _param_value(v) for k, v in params.items()}}
        if record["status"] != "FINISHED":
            tags["metarl.error"] = str(record.get("error", "unknown error"))[:4000]
            trace = record.get("traceback")
            artifacts = {"error.txt": trace.encode()} if trace else {}
            return make_entry(run_id, "FAILED", tags=tags, artifacts=artifacts, **common)
        return make_entry(
            run_id,
            "FINISHED",
            tags=tags,
            metrics=record["metrics"],
            artifacts=record["artifacts"],
            remove=job.checkpoint,
            **common,
        )

    def _sync(self) -> None:
        """Write what is pending: retried for a while if the store was there at the last write,
        else tried once per poll."""
        if not len(self.outbox):
            return
        if not self.away:
            self._flush(RECORD_PATIENCE)
        elif time.monotonic() - self.last_try >= AWAY_POLL_SECONDS:
            self._flush(0.0)

    def _flush(self, patience: float) -> bool:
        """Write what is pending (patience: seconds per result); whether nothing is left."""
        if not len(self.outbox):
            return True
        self.last_try = time.monotonic()
        pending = len(self.outbox)
        written = self.outbox.flush(self.client, patience)
        if written and self.away:
            print(f"the tracking store is back: wrote {pending} kept results", file=sys.stderr)
        elif not written and not self.away:
            self._went_away(None)
        self.away = not written
        return written

    def _went_away(self, error: BaseException | None) -> None:
        if not self.away:
            reason = f" ({first_line(error)})" if error is not None else ""
            print(
                f"the tracking store is unreachable{reason}: results are kept in "
                f"{self.outbox.folder} and written when it returns",
                file=sys.stderr,
            )
        self.away = True

    def _kill_open_runs(self) -> None:
        """Mark the runs still running KILLED, as far as the store takes it (else reaped later)."""
        for run_id in sorted(self.open_runs):
            try:
                self.client.set_terminated(run_id, "KILLED")
            except Exception as error:
                if not is_transient(error):
                    raise
                return

    def _merge_ledger(self) -> None:
        """Merge the runs the store holds as FINISHED and the ledger lacks into the ledger (the
        store must have their results: called when nothing is pending)."""
        if self.ledger is None or not self.unmerged:
            return
        frame = records_from_store(self.tracking_uri, self.sweep.experiment, self.unmerged)
        frame = frame[frame["config_hash"].isin(self.unmerged)]
        if len(frame):
            self.ledger.parent.mkdir(parents=True, exist_ok=True)
            merged = merge_records(self.ledger, frame)
            self.in_ledger = ledger_keys(merged)
        self.unmerged.clear()

    def _heartbeat(self) -> None:
        if self.away or time.time() - self.last_beat < HEARTBEAT_SECONDS:
            return
        self.last_beat = time.time()
        try:
            self.client.set_tag(self.parent_id, BEAT, str(self.last_beat))
        except Exception as error:
            if not is_transient(error):
                raise
            self._went_away(error)


def _param_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, list | dict) else str(value)
