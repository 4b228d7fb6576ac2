"""The runs of a sweep's grid: learned and classical jobs, resolved and hashed.

:func:`benchmark.sweeps.grid.load_sweep` reads and validates a sweep file; for each task setting it
calls :func:`learned_jobs` and :func:`classical_jobs` here, which resolve every run's config (the
order of overrides is the grid module's) and give each its identity (``config_hash``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import yaml
from omegaconf import OmegaConf

from benchmark.run.config import (
    RunSpec,
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
from tasks import TASKS, get_task_class, require


def dotlist(mapping: Any, where: str) -> list[str]:
    """``key=value`` strings of a mapping of dotted keys (``where`` names it in errors)."""
    require(isinstance(mapping, dict), f"'{where}' must be a mapping of dotted keys to values")
    return [f"{key}={format_value(value)}" for key, value in flatten(mapping).items()]


def format_value(value: Any) -> str:
    """A value as an override writes it: null, true/false, JSON for lists and mappings."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def learned_jobs(algo, task, setting, shared, run_overrides, seeds) -> list[Job]:
    """One job per seed of a learned algorithm entry on one task setting, each resolved and
    hashed (``shared``: the sweep's and task entry's overrides; ``run_overrides``: the command
    line's run keys)."""
    entry_overrides = dotlist(algo.get("overrides") or {}, f"algorithms.{algo['name']}.overrides")
    cpus = algo.get("cpus", 1)
    require(isinstance(cpus, int) and cpus >= 1, f"algorithms.{algo['name']}.cpus must be >= 1")
    overrides = [*shared, *entry_overrides, *task_items(setting), *run_overrides]
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


def classical_jobs(strategies, exclude, task, setting, shared, run_overrides, seeds) -> list[Job]:
    """One job per seed of every strategy that supports ``task`` and is not excluded; a strategy
    takes the ``task.*`` and ``eval.*`` keys (``eval.task.*``: its held-out evaluation)."""
    from baselines.strategies import get_strategy

    keys = [item for item in [*shared, *run_overrides] if item.split(".")[0] in ("task", "eval")]
    task_keys = [item for item in keys if item.startswith("task.")] + task_items(setting)
    evaluation = eval_config([item for item in keys if item.startswith("eval.")])
    task_keys += [item for item in keys if item.startswith("eval.task.")]  # held-out evaluation
    jobs = []
    for entry in strategies:
        strategy = get_strategy(entry["name"])
        if strategy.families is not None and task not in strategy.families:
            continue
        if excluded(exclude, entry["name"], task, setting):
            continue
        params = dotlist(entry.get("params") or {}, f"strategies.{entry['name']}.params")
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
            identity = json.dumps(classical_identity(entry["name"], task, config), sort_keys=True)
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


def classical_identity(name: str, task: str, config: dict[str, Any]) -> dict[str, Any]:
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


def eval_config(items: list[str]) -> dict[str, Any]:
    """The validated ``eval`` section of ``eval.*`` items (a classical job's)."""
    schema = OmegaConf.create({"eval": eval_schema()})
    OmegaConf.set_struct(schema, True)
    config = merge_checked(schema, parse_overrides(items))
    validate_sections(config)
    return OmegaConf.to_container(config.eval)


def task_items(setting: dict[str, Any]) -> list[str]:
    """``task.<key>=value`` strings of a task setting."""
    return [f"task.{key}={format_value(value)}" for key, value in setting.items()]


def excluded(exclude: list[dict[str, Any]], name: str, task: str, setting: dict[str, Any]) -> bool:
    """Whether an ``exclude`` entry leaves out ``name`` on this task setting."""
    for entry in exclude:
        if entry.get("name", name) != name or entry.get("task", task) != task:
            continue
        if all(setting.get(k) == v for k, v in (entry.get("match") or {}).items()):
            return True
    return False
