"""Sweep configs: a YAML grid of algorithms and classical strategies x task settings x seeds.

A sweep file (the built-ins live in ``configs/sweeps/<name>.yaml``)::

    name: quick                    # also the default MLflow experiment and results/<name>.md
    seeds: 3                       # 0, 1, 2; or a list such as [0, 5, 9]
    overrides:                     # dotted keys for every run, after the per-pair defaults
      trainer.env_steps: 500000
      eval.trials: 1000
    algorithms:                    # learned: a name, a module:Class, or {name, overrides, cpus}
      - lstm-a2c
      - {name: my_pkg.my_algo:MyAlgo, overrides: {algo.lr: 0.001}}
    strategies:                    # classical: a name or {name, params}
      - random
      - {name: eps-greedy, params: {eps: 0.1}}
    tasks:                         # a name, or {name, grid | variants, overrides, requires}
      - name: bernoulli-bandit
        grid: {arms: [5, 10], pulls: [10]}       # every combination
      - name: dependent-bandit
        variants: [{difficulty: easy, pulls: 100}]
      - name: hopper-params
        requires: mujoco                         # left out, with a note, without the extra
    exclude:                       # pairs to leave out
      - {name: bayes-optimal, task: bernoulli-bandit, match: {pulls: 500}}

Overrides apply in this order: sweep ``overrides``, the task entry's, the algorithm entry's, the
task setting, the command line's ``key=value``, the seed. A classical strategy takes the ``task.*``
and ``eval.*`` keys and is paired only with the families it supports. Every run of the grid is
resolved and validated here, before anything starts; any problem is one ConfigError line.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchmark.run.config import (
    CONFIG_DIR,
    RUN_SECTIONS,
    SEED_RANGE,
    check_seed,
    parse_overrides,
)
from benchmark.sweeps.jobs import classical_jobs, dotlist, excluded, learned_jobs
from benchmark.sweeps.worker import Job
from tasks import ConfigError, get_task_class, require
from tasks.mujoco.simulator import require_mujoco

SWEEP_DIR = CONFIG_DIR / "sweeps"
EXTRAS = {"mujoco": require_mujoco}
"""Optional dependencies a task entry may name under ``requires``: each check raises a one-line
ConfigError naming the family and the install command when the extra is missing."""
SWEEP_KEYS = ("name", "description", "experiment", "seeds", "overrides", "algorithms")
SWEEP_KEYS += ("strategies", "tasks", "exclude")
CLI_SWEEP_KEYS = ("name", "experiment", "seeds")
MIN_SEEDS = 2
MAX_SEEDS = 1000
"""Seeds of one sweep at most (a larger count is a typo, not a study)."""


@dataclass
class Sweep:
    """A validated sweep: its identity and every job of its grid."""

    name: str
    experiment: str
    seeds: list[int]
    jobs: list[Job]
    source: str
    resolved: dict[str, Any] = field(default_factory=dict)
    """The sweep's settings after the command line's keys (logged with the parent run)."""
    notes: list[str] = field(default_factory=list)
    """One line per task entry left out because an extra it ``requires`` is not installed."""


def sweep_names() -> list[str]:
    """The built-in sweeps, sorted."""
    return sorted(path.stem for path in SWEEP_DIR.glob("*.yaml"))


def load_sweep(source: str, cli_overrides: list[str]) -> Sweep:
    """Read, override, validate and expand a sweep; every problem is one ConfigError line.

    Args:
        source: a built-in sweep's name or a path to a YAML file.
        cli_overrides: ``key=value`` strings: sweep keys (``seeds``, ``name``, ``experiment``) or
            run keys (``trainer.env_steps=...``, ``eval.trials=...``) applied to every run.
    """
    raw, path = _read_yaml(source)
    _check_keys(raw, SWEEP_KEYS, f"sweep '{source}'")
    sweep_settings, run_overrides = _split_cli(cli_overrides)
    raw = {**raw, **sweep_settings}
    name = str(raw.get("name") or path.stem)
    seeds = _seeds(raw.get("seeds", 3))
    base = dotlist(raw.get("overrides") or {}, "overrides")
    algorithms = [
        _entry(e, ("name", "overrides", "cpus"), "algorithms") for e in _list(raw, "algorithms")
    ]
    strategies = [_entry(e, ("name", "params"), "strategies") for e in _list(raw, "strategies")]
    keys = ("name", "grid", "variants", "overrides", "requires")
    tasks = [_entry(e, keys, "tasks") for e in _list(raw, "tasks")]
    missing = [_missing_extra(task) for task in tasks]
    notes = [note for note in missing if note]
    tasks = [task for task, note in zip(tasks, missing, strict=True) if not note]
    require(algorithms or strategies, f"sweep '{name}' names no algorithms and no strategies")
    require(tasks, f"sweep '{name}' names no tasks")
    exclude = [_entry(e, ("name", "task", "match"), "exclude") for e in _list(raw, "exclude")]
    _check_exclude(exclude, algorithms + strategies)
    jobs: list[Job] = []
    for task in tasks:
        get_task_class(task["name"])
        task_overrides = dotlist(task.get("overrides") or {}, f"tasks.{task['name']}.overrides")
        for setting in _settings(task):
            context = (task["name"], setting, [*base, *task_overrides], run_overrides, seeds)
            for algo in algorithms:
                if not excluded(exclude, algo["name"], task["name"], setting):
                    jobs += learned_jobs(algo, *context)
            jobs += classical_jobs(strategies, exclude, *context)
    _check_strategies_used(strategies, jobs)
    resolved = {**raw, "name": name, "seeds": seeds, "cli_overrides": list(cli_overrides)}
    experiment = str(raw.get("experiment") or name)
    return Sweep(name, experiment, seeds, _unique(jobs), str(path), resolved, notes)


def _missing_extra(task: dict[str, Any]) -> str:
    """A note when the extra the task entry ``requires`` is not installed, else ""."""
    extra = task.get("requires")
    if extra is None:
        return ""
    require(
        extra in EXTRAS,
        f"tasks.{task['name']}.requires must be one of {', '.join(EXTRAS)}, got {extra!r}",
    )
    try:
        EXTRAS[extra](task["name"])
    except ConfigError as error:
        return f"note: {task['name']} is left out: {error}"
    return ""


def _read_yaml(source: str) -> tuple[dict[str, Any], Path]:
    path = SWEEP_DIR / f"{source}.yaml"
    if not path.is_file():
        path = Path(source)
    if not path.is_file():
        raise ConfigError(
            f"unknown sweep '{source}'; built-in sweeps: {', '.join(sweep_names())}, "
            "or a path to a YAML file"
        )
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path))
    except (OmegaConfBaseException, ValueError) as error:
        raise ConfigError(f"cannot read sweep {path}: {str(error).splitlines()[0]}") from None
    require(isinstance(raw, dict), f"sweep {path} must be a YAML mapping")
    return raw, path


def _split_cli(overrides: list[str]) -> tuple[dict[str, Any], list[str]]:
    parsed = OmegaConf.to_container(parse_overrides(overrides))
    sweep_settings = {k: v for k, v in parsed.items() if k in CLI_SWEEP_KEYS}
    for key in parsed:
        require(
            key in CLI_SWEEP_KEYS or key in RUN_SECTIONS,
            f"unknown sweep key '{key}'; valid keys: {', '.join(CLI_SWEEP_KEYS)} or a run key "
            f"under {', '.join(RUN_SECTIONS)} (e.g. trainer.env_steps=10000)",
        )
    run = [item for item in overrides if item.split("=", 1)[0].split(".")[0] in RUN_SECTIONS]
    return sweep_settings, run


def _check_keys(mapping: dict[str, Any], valid: tuple[str, ...], where: str) -> None:
    for key in mapping:
        require(key in valid, f"unknown key '{key}' in {where}; valid keys: {', '.join(valid)}")


def _list(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key) or []
    require(isinstance(value, list), f"sweep key '{key}' must be a list, got {value!r}")
    return value


def _entry(entry: Any, valid: tuple[str, ...], where: str) -> dict[str, Any]:
    if isinstance(entry, str):
        return {"name": entry}
    require(isinstance(entry, dict), f"each entry of '{where}' must be a name or a mapping")
    _check_keys(entry, valid, f"an entry of '{where}'")
    require(
        isinstance(entry.get("name", ""), str) and (entry.get("name") or where == "exclude"),
        f"an entry of '{where}' has no name: {entry}",
    )
    return entry


def _seeds(value: Any) -> list[int]:
    valid = (
        f"seeds must give at least {MIN_SEEDS} seeds and at most {MAX_SEEDS} (tables report CIs "
        f"over seeds): a count, or a list of seeds, each {SEED_RANGE}; got {value!r}"
    )
    if isinstance(value, int) and not isinstance(value, bool):
        require(MIN_SEEDS <= value <= MAX_SEEDS, valid)
        return list(range(value))
    require(isinstance(value, list), valid)
    for seed in value:
        check_seed(seed, f"each of seeds {value!r}")
    seeds = list(dict.fromkeys(value))
    require(MIN_SEEDS <= len(seeds) <= MAX_SEEDS, valid)
    return seeds


def _settings(task: dict[str, Any]) -> list[dict[str, Any]]:
    where = f"tasks.{task['name']}"
    grid, variants = task.get("grid"), task.get("variants")
    require(grid is None or variants is None, f"{where} has both 'grid' and 'variants'; use one")
    if grid is not None:
        require(isinstance(grid, dict), f"{where}.grid must map parameters to lists of values")
        values = [v if isinstance(v, list) else [v] for v in grid.values()]
        return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*values)]
    if variants is not None:
        ok = isinstance(variants, list) and all(isinstance(v, dict) for v in variants)
        require(ok and variants, f"{where}.variants must be a non-empty list of mappings")
        return variants
    return [{}]


def _check_exclude(exclude: list[dict[str, Any]], entries: list[dict[str, Any]]) -> None:
    names = [entry["name"] for entry in entries]
    for entry in exclude:
        name = entry.get("name")
        require(
            name is None or name in names,
            f"exclude names '{name}', which is not in the sweep; names: {', '.join(names)}",
        )


def _check_strategies_used(strategies: list[dict[str, Any]], jobs: list[Job]) -> None:
    from baselines.strategies import get_strategy

    used = {job.name for job in jobs if job.kind == "classical"}
    for entry in strategies:
        strategy = get_strategy(entry["name"])
        require(
            entry["name"] in used or strategy.families is None,
            f"strategy '{entry['name']}' supports none of the sweep's tasks; "
            f"it supports: {', '.join(strategy.families or ())}",
        )


def _unique(jobs: list[Job]) -> list[Job]:
    first: dict[str, Job] = {}
    for job in jobs:
        first.setdefault(job.config_hash, job)
    return list(first.values())
