"""Run records: the one format of stored runs, a CSV ledger with one row per finished run.

A ledger (``results/reference/*.csv``, a campaign's ``results/ledgers/*.csv``) lets a table be
rebuilt without the MLflow store that produced its runs (``metarl-bench table --from FILE...``),
lets ``compare`` set a new algorithm beside runs it does not retrain, and lets a campaign span
invocations and machines: :func:`merge_records` replaces a run with the same :data:`RUN_KEY` and
keeps the rest.

Columns (:data:`COLUMNS`; blank where a run did not log the value):

- identity: ``run_id``, ``experiment``, ``algorithm``, ``kind`` (learned or classical), ``task``,
  ``task_version`` (the family's :attr:`tasks.base.TaskFamily.version`), ``setting`` (the family
  and its parameters as text, as tables show it: :func:`tasks.setting_label` of ``task`` and
  ``task_params``, recomputed on reading), ``task_params`` (JSON of the ``task.*`` values),
  ``seed``, ``config_hash``, ``trials`` (held-out evaluation trials), ``tuned`` (a classical
  strategy's tuned values);
- cost: ``env_steps`` (trained), ``train_seconds``, ``wall_seconds``, ``cpu_seconds``, ``commit``,
  ``dirty``;
- results: ``total_reward``, ``stderr`` (its standard error over the trials),
  ``normalized_score``, ``regret``, ``success_rate``, ``train_return`` (the last logged mean
  training trial return), ``per_episode_returns`` (JSON list: the mean return of episode k of a
  held-out trial), ``heldout_total_reward``, ``heldout_normalized_score``,
  ``heldout_success_rate``, ``heldout_task_params`` (JSON of ``eval.task.*``), ``behaviour``
  (JSON of the evaluation's behavioural statistics, e.g. two-step's stay table; blank where the
  family records none), ``random_reference`` and ``oracle_reference`` (the family's expected
  totals on the same held-out tasks, which the normalised score is computed from; NaN oracle
  where the family has none);
- ``protocol``: JSON of what must agree for two runs to be compared (:data:`PROTOCOL_FIELDS`):
  ``eval_trials``, ``eval_seed`` (the held-out stream: None means the run's seed),
  ``episodes_per_trial``, ``env_steps_budget`` (``trainer.env_steps``) and ``algo_hash`` (a hash
  of the run's ``algo.*`` or ``strategy.*`` config).

Reading parses only CSV and JSON; nothing in a ledger is executed.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.reporting.runs import open_store, read_experiment, task_params
from tasks import ConfigError, require, setting_label

RUN_KEY = ("algorithm", "setting", "seed", "config_hash")
"""A run's identity in a ledger: a merged row with the same key replaces the stored one."""
IDENTITY = ("run_id", "experiment", "algorithm", "kind", "task", "task_version", "setting")
IDENTITY += ("task_params", "seed", "config_hash", "trials", "tuned")
COST = ("env_steps", "train_seconds", "wall_seconds", "cpu_seconds", "commit", "dirty")
RESULTS = ("total_reward", "stderr", "normalized_score", "regret", "success_rate", "train_return")
RESULTS += ("per_episode_returns", "heldout_total_reward", "heldout_normalized_score")
RESULTS += ("heldout_success_rate", "heldout_task_params", "behaviour")
RESULTS += ("random_reference", "oracle_reference")
COLUMNS = (*IDENTITY, *COST, *RESULTS, "protocol")
"""Every column of a ledger, in order."""
REQUIRED = ("algorithm", "kind", "task", "task_version", "setting", "task_params", "seed")
REQUIRED += ("config_hash", "trials", "total_reward", "normalized_score", "protocol")
"""The columns a ledger must have to be read."""
NUMERIC = ("task_version", "trials", "env_steps", "train_seconds", "wall_seconds", "cpu_seconds")
NUMERIC += ("total_reward", "stderr", "normalized_score", "regret", "success_rate", "train_return")
NUMERIC += ("heldout_total_reward", "heldout_normalized_score", "heldout_success_rate")
NUMERIC += ("random_reference", "oracle_reference")
PROTOCOL_FIELDS = ("eval_trials", "eval_seed", "episodes_per_trial", "env_steps_budget")
PROTOCOL_FIELDS += ("algo_hash",)
EXTRA_METRICS = {
    "train_seconds": "train_seconds",
    "wall_seconds": "wall_seconds",
    "cpu_seconds": "cpu_seconds",
    "eval/stderr": "stderr",
    "train/trial_return": "train_return",
}


def records_from_store(
    tracking_uri: str, experiment: str, config_hashes: set[str] | None = None
) -> pd.DataFrame:
    """The records of an experiment's selected runs (the runs its table shows).

    Args:
        tracking_uri: the MLflow store.
        experiment: the experiment's name.
        config_hashes: keep the runs of these config hashes (None: the table's selection, the
            latest sweep's grid).
    """
    client = open_store(tracking_uri)
    raw, runs, _ = read_experiment(client, tracking_uri, experiment, config_hashes)
    raw = raw.set_index("run_id", drop=False) if len(raw) else raw
    rows = [_record(client, raw, run, experiment) for run in runs.to_dict("records")]
    return _ordered(typed(pd.DataFrame(rows, columns=list(COLUMNS))))


def _record(client: Any, raw: pd.DataFrame, run: dict[str, Any], experiment: str) -> dict:
    run_id = run["run_id"]
    value = lambda column: _text(raw.at[run_id, column]) if column in raw else ""  # noqa: E731
    evaluation = _evaluation(client, run_id)
    heldout = task_params(raw, run_id, "params.eval.task.")
    record = {column: run.get(column, "") for column in COLUMNS}
    record |= {
        "experiment": experiment,
        "task_version": value("tags.task_version") or "1",
        "task_params": _json({k: _parse(v) for k, v in task_params(raw, run_id).items()}),
        "env_steps": _eval_step(client, run_id),
        "wall_seconds": value("metrics.wall_seconds") or value("tags.metarl.seconds"),
        "commit": value("tags.git_commit"),
        "dirty": value("tags.git_dirty"),
        "per_episode_returns": _json(evaluation.get("per_episode_returns", [])),
        "heldout_task_params": _json({k: _parse(v) for k, v in heldout.items()}) if heldout else "",
        "behaviour": _json(evaluation["behaviour"]) if evaluation.get("behaviour") else "",
        "random_reference": evaluation.get("random_reference"),
        "oracle_reference": evaluation.get("oracle_reference"),
    }
    for metric, column in EXTRA_METRICS.items():
        record[column] = value(f"metrics.{metric}") or record.get(column, "")
    sections = ("params.algo.", "params.strategy.")
    algo = {k: _text(v) for k, v in raw.loc[run_id].items() if k.startswith(sections)}
    protocol = {
        "eval_trials": None if _missing(run["trials"]) else int(run["trials"]),
        "eval_seed": _parse(value("params.eval.seed")),
        "episodes_per_trial": len(evaluation.get("per_episode_returns", [])) or None,
        "env_steps_budget": _parse(value("params.trainer.env_steps")) or 0,
        "algo_hash": _hash(algo),
    }
    record["protocol"] = _json(protocol)
    return {k: ("" if _missing(v) else v) for k, v in record.items()}


def read_records(paths: Iterable[str | Path]) -> pd.DataFrame:
    """The records of one or more ledgers, one frame, typed (numbers as floats, seed as int).

    Args:
        paths: CSV files; a string with ``*``, ``?`` or ``[`` is expanded as a glob.

    Raises:
        ConfigError: a missing file, a glob matching nothing, or a file lacking required columns
            (one line naming the file and the columns).
    """
    files = expand_paths(paths)
    frames = []
    for path in files:
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            reason = str(error).splitlines()[0]
            raise ConfigError(f"cannot read run records {path}: {reason}") from None
        missing = [c for c in REQUIRED if c not in frame.columns]
        require(
            not missing,
            f"run records {path} lack the columns: {', '.join(missing)}",
        )
        frames.append(frame)
    return typed(pd.concat(frames, ignore_index=True))


def read_ledger(path: str | Path) -> pd.DataFrame:
    """The records of the ledger at ``path``, or an empty records frame when it does not exist
    yet (a campaign's first run creates it)."""
    if Path(path).is_file():
        return read_records([path])
    return typed(pd.DataFrame(columns=list(COLUMNS)))


def ledger_keys(ledger: pd.DataFrame) -> set[tuple[str, str]]:
    """The (algorithm, config hash) of every run in ``ledger``: a run's identity across stores."""
    return set(zip(ledger["algorithm"], ledger["config_hash"], strict=True))


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """The files named by ``paths`` (globs expanded, sorted), each of which must exist.

    Args:
        paths: file names or glob patterns.
    """
    files: list[Path] = []
    for item in paths:
        text = str(item)
        if any(ch in text for ch in "*?["):
            matched = sorted(glob.glob(text))
            require(bool(matched), f"no run records match '{text}'")
            files += [Path(m) for m in matched]
        else:
            require(Path(text).is_file(), f"no run records file {text}")
            files.append(Path(text))
    require(bool(files), "no run records named (give one or more CSV files)")
    return list(dict.fromkeys(files))


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """A records frame with every :data:`COLUMNS` entry present (blank when absent), numbers as
    floats (NaN when blank), ``seed`` as an integer and text columns as strings.

    Args:
        frame: records as read from CSV (all text) or built from a store.
    """
    frame = frame.reset_index(drop=True)  # a copy; labels unique even for concatenated frames
    for column in COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    for column in (*NUMERIC, "seed"):
        text = frame[column].astype(str).str.strip()
        try:
            frame[column] = pd.to_numeric(text.where(~text.isin(["", "<NA>", "nan", "None"]), None))
        except ValueError as error:
            raise ConfigError(
                f"run records: column '{column}' holds a non-number ({error})"
            ) from None
    frame["seed"] = frame["seed"].astype("Int64")
    text = [c for c in frame.columns if c not in NUMERIC and c != "seed"]
    frame[text] = frame[text].fillna("").astype(str)
    labelled = frame[frame["task_params"] != ""]
    frame.loc[labelled.index, "setting"] = [
        setting_label(task, _parse(params) or {})
        for task, params in zip(labelled["task"], labelled["task_params"], strict=True)
    ]
    return frame


def select_records(frame: pd.DataFrame, where: Iterable[str]) -> pd.DataFrame:
    """The records matching every ``KEY=VALUE`` condition.

    A KEY is a record column (``algorithm``, ``kind``, ``seed``, ``task``, ...) or a task
    parameter (``pulls``, ``arms``, ...; compared with the value in ``task_params``). Several
    values of one KEY, comma-separated (``seed=0,1,2``), match any of them.

    Args:
        frame: records.
        where: the conditions; an unknown KEY or a condition without ``=`` is a ConfigError.
    """
    keep = pd.Series(True, index=frame.index)
    params = frame["task_params"].map(lambda text: _parse(text) or {}) if len(frame) else None
    known = set(COLUMNS) | {k for p in (params if params is not None else []) for k in p}
    for condition in where:
        key, sep, text = condition.partition("=")
        require(sep == "=" and key, f"--where takes KEY=VALUE, got '{condition}'")
        require(key in known, f"unknown --where key '{key}'; keys: {', '.join(sorted(known))}")
        wanted = {value.strip() for value in text.split(",")}
        if key in COLUMNS:
            values = frame[key].map(_text)
        else:
            values = params.map(lambda p, key=key: _text(p.get(key)))
        keep &= values.isin(wanted)
    return frame[keep]


def merge_records(path: str | Path, frame: pd.DataFrame) -> pd.DataFrame:
    """Merge ``frame`` into the ledger at ``path`` (created if absent) and return the merged rows.

    A new row replaces a stored row with the same :data:`RUN_KEY`; other stored rows stay. The
    file is written whole to a temporary file beside it and moved into place (``os.replace``), so
    a reader never sees half a ledger; rows are sorted by task, setting, algorithm, seed and
    config hash, so a rewrite with the same rows gives the same file.

    Args:
        path: the ledger CSV.
        frame: records (:func:`records_from_store` or :func:`read_records` output).
    """
    path = Path(path)
    new = typed(frame)
    stored = read_records([path]) if path.is_file() else new.iloc[0:0]
    merged = pd.concat([stored, new], ignore_index=True)
    merged = merged.drop_duplicates(list(RUN_KEY), keep="last")
    merged = _ordered(merged)
    write_records(path, merged)
    return merged


def write_records(path: str | Path, frame: pd.DataFrame) -> None:
    """Write records as CSV atomically (a temporary file in the same folder, then ``os.replace``).

    Args:
        path: the ledger CSV (its folder is created).
        frame: records; the :data:`COLUMNS` come first, in order, then any others.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = [c for c in frame.columns if c not in COLUMNS]
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # a plain file's mode, not mkstemp's private 0600
        with os.fdopen(handle, "w", newline="") as out:
            frame[[*COLUMNS, *extra]].to_csv(out, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def protocol(record: dict[str, Any] | pd.Series) -> dict[str, Any]:
    """A record's protocol fields (its ``protocol`` JSON) with its task version and parameters.

    Args:
        record: one row of a records frame.
    """
    fields = json.loads(record["protocol"]) if record["protocol"] else {}
    fields["task_version"] = int(record["task_version"])
    fields["task_params"] = json.loads(record["task_params"]) if record["task_params"] else {}
    return fields


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    keys = ["task", "setting", "algorithm", "seed", "config_hash"]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def _evaluation(client: Any, run_id: str) -> dict[str, Any]:
    """The run's ``evaluation.json`` (empty if it has none)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, "evaluation.json", tmp)
        except Exception:  # a run without the artifact: no per-episode returns
            return {}
        return json.loads(Path(path).read_text())


def _eval_step(client: Any, run_id: str) -> int | str:
    """The env steps at which the run logged its evaluation (its trained env steps)."""
    history = client.get_metric_history(run_id, "eval/mean_total_reward")
    return int(history[-1].step) if history else ""


def _parse(text: str) -> Any:
    """A parameter MLflow stored as text, as JSON where it parses (numbers, lists), else text
    (``None`` and "" are None)."""
    if text in ("", "None"):
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def _text(value: Any) -> str:
    return "" if _missing(value) else str(value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _hash(value: Any) -> str:
    return hashlib.sha256(_json(value).encode()).hexdigest()[:16]
