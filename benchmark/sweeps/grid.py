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

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchmark.run.config import (
    CONFIG_DIR,
    RUN_SECTIONS,
    SEED_RANGE,
    RunSpec,
    check_seed,
    eval_schema,
    heldout_task_params,
    load_run_config,
    load_task_config,
    merge_checked,
    parse_overrides,
    split_heldout,
    validate_sections,
)
from benchmark.run.tracking import flatten
from benchmark.sweeps.worker import Job
from tasks import TASKS, ConfigError, get_task_class, require
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
    base = _dotlist(raw.get("overrides") or {}, "overrides")
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
        task_overrides = _dotlist(task.get("overrides") or {}, f"tasks.{task['name']}.overrides")
        for setting in _settings(task):
            context = (task["name"], setting, [*base, *task_overrides], run_overrides, seeds)
            for algo in algorithms:
                if not _excluded(exclude, algo["name"], task["name"], setting):
                    jobs += _learned_jobs(algo, *context)
            jobs += _classical_jobs(strategies, exclude, *context)
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


def _dotlist(mapping: Any, where: str) -> list[str]:
    require(isinstance(mapping, dict), f"'{where}' must be a mapping of dotted keys to values")
    return [f"{key}={_format(value)}" for key, value in flatten(mapping).items()]


def _format(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


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


def _learned_jobs(algo, task, setting, shared, run_overrides, seeds) -> list[Job]:
    entry_overrides = _dotlist(algo.get("overrides") or {}, f"algorithms.{algo['name']}.overrides")
    cpus = algo.get("cpus", 1)
    require(isinstance(cpus, int) and cpus >= 1, f"algorithms.{algo['name']}.cpus must be >= 1")
    overrides = [*shared, *entry_overrides, *_task_items(setting), *run_overrides]
    # Resolved once per setting: the seed only replaces the top-level ``seed`` (the worker
    # rebuilds each run from its overrides and checks that the hash agrees).
    first = load_run_config(algo["name"], task, [*overrides, f"seed={seeds[0]}"])
    jobs = []
    for seed in seeds:
        spec = RunSpec(algo["name"], task, OmegaConf.merge(first.config, {"seed": seed}))
        eval_seed = spec.config.eval.seed
        jobs.append(
            Job(
                kind="learned",
                name=algo["name"],
                task=task,
                task_params=spec.section("task"),
                seed=seed,
                overrides=[*overrides, f"seed={seed}"],
                config_hash=spec.config_hash(),
                params=flatten(OmegaConf.to_container(spec.config, resolve=True)),
                config_yaml=OmegaConf.to_yaml(spec.config),
                trials=int(spec.config.eval.trials),
                eval_seed=seed if eval_seed is None else int(eval_seed),
                cpus=cpus,
            )
        )
    return jobs


def _classical_jobs(strategies, exclude, task, setting, shared, run_overrides, seeds) -> list[Job]:
    from baselines.strategies import get_strategy

    keys = [item for item in [*shared, *run_overrides] if item.split(".")[0] in ("task", "eval")]
    task_keys = [item for item in keys if item.startswith("task.")] + _task_items(setting)
    evaluation = _eval_config([item for item in keys if item.startswith("eval.")])
    task_keys += [item for item in keys if item.startswith("eval.task.")]  # held-out evaluation
    jobs = []
    for entry in strategies:
        strategy = get_strategy(entry["name"])
        if strategy.families is not None and task not in strategy.families:
            continue
        if _excluded(exclude, entry["name"], task, setting):
            continue
        params = _dotlist(entry.get("params") or {}, f"strategies.{entry['name']}.params")
        overrides = [*task_keys, *(f"strategy.{item}" for item in params)]
        plain, heldout = split_heldout(overrides)
        task_params, strategy_params = load_task_config(task, plain, strategy.config)
        if heldout:  # checked here, before anything starts
            heldout_task_params(task, task_params, heldout)
        for seed in seeds:
            eval_seed = seed if evaluation["seed"] is None else int(evaluation["seed"])
            config = {"seed": seed, "strategy": strategy_params, "task": task_params}
            config["eval"] = {"trials": evaluation["trials"], "seed": eval_seed}
            if evaluation["task"]:
                config["eval"]["task"] = evaluation["task"]
            identity = json.dumps(_classical_identity(entry["name"], task, config), sort_keys=True)
            jobs.append(
                Job(
                    kind="classical",
                    name=entry["name"],
                    task=task,
                    task_params=task_params,
                    seed=seed,
                    overrides=overrides,
                    config_hash=hashlib.sha256(identity.encode()).hexdigest()[:16],
                    params=flatten(config),
                    config_yaml=yaml.safe_dump(config, sort_keys=False),
                    trials=int(evaluation["trials"]),
                    eval_seed=eval_seed,
                )
            )
    return jobs


def _classical_identity(name: str, task: str, config: dict[str, Any]) -> dict[str, Any]:
    """What a classical job's hash covers: the strategy, its config (the task's parameters under
    ``task``) and, where another family has the same parameter names (hopper-params and
    halfcheetah-params), the family's name; the parameters alone identify every other family."""
    identity = {"name": name, **config}
    fields = {spec.name for spec in dataclasses.fields(get_task_class(task).Config)}
    for other in TASKS:
        other_fields = {spec.name for spec in dataclasses.fields(TASKS[other].Config)}
        if other != task and other_fields == fields:
            return {**identity, "family": task}
    return identity


def _eval_config(items: list[str]) -> dict[str, Any]:
    schema = OmegaConf.create({"eval": eval_schema()})
    OmegaConf.set_struct(schema, True)
    config = merge_checked(schema, parse_overrides(items))
    validate_sections(config)
    return OmegaConf.to_container(config.eval)


def _task_items(setting: dict[str, Any]) -> list[str]:
    return [f"task.{key}={_format(value)}" for key, value in setting.items()]


def _excluded(exclude: list[dict[str, Any]], name: str, task: str, setting: dict[str, Any]) -> bool:
    for entry in exclude:
        if entry.get("name", name) != name or entry.get("task", task) != task:
            continue
        if all(setting.get(k) == v for k, v in (entry.get("match") or {}).items()):
            return True
    return False


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
