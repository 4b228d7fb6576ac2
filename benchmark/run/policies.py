"""Resolve ``evaluate``'s POLICY argument (a strategy, a checkpoint or a run id) and evaluate it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from baselines.strategies import STRATEGIES, get_strategy
from benchmark.run.config import heldout_task_params, load_task_config, split_heldout
from benchmark.run.evaluation import METRIC_FIELDS, evaluate_policy
from benchmark.run.tracking import resolve_tracking_uri
from benchmark.run.tuning import explicit_strategy_keys, tune_strategy, tuned_param
from tasks import ConfigError, make_task, phi_dim, require


def evaluate_reference(
    reference: str,
    task_name: str,
    overrides: list[str],
    trials: int,
    seed: int,
    tracking_uri: str | None = None,
    tune_trials: int | None = None,
    plugin: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``reference`` on held-out trials of ``task_name``; return the JSON payload.

    Args:
        reference: a strategy name, a checkpoint path or an MLflow run id.
        task_name: a registered family.
        overrides: ``task.*`` (and, for a strategy, ``strategy.*``) key=value strings;
            ``eval.task.*`` adds a held-out evaluation on ``task.*`` with those fields on top
            (the payload's ``heldout``; the same trials and seed).
        trials: number of held-out trials.
        seed: seed of the test task stream.
        tracking_uri: the MLflow store holding run ids.
        tune_trials: tuning trials per grid value for a strategy with a grid (default ``trials``);
            its hyperparameter is tuned on the ``tune`` stream unless given as ``strategy.X=``.
        plugin: the ``module:Class`` a checkpoint of a plug-in algorithm needs (``--algorithm``).
    """
    require(trials >= 1, f"--trials must be >= 1, got {trials}")
    require(
        tune_trials is None or tune_trials >= 1, f"--tune-trials must be >= 1, got {tune_trials}"
    )
    tuned: dict[str, Any] = {}
    overrides, heldout = split_heldout(overrides)
    strategy = get_strategy(reference) if reference in STRATEGIES else None
    task_params, params = load_task_config(task_name, overrides, strategy and strategy.config)
    family = make_task(task_name, **task_params)
    heldout_params = heldout_task_params(task_name, task_params, heldout) if heldout else None
    families = [family] + ([make_task(task_name, **heldout_params)] if heldout_params else [])
    if strategy is not None:
        if tuned_param(reference, explicit_strategy_keys(overrides), task_name) is not None:
            tuning = tune_strategy(reference, family, tune_trials or trials, seed, params)
            params, tuned = {**params, **tuning.tuned}, tuning.tuned
        policies, device = [strategy.build(each, params) for each in families], "cpu"
    else:
        policies, device = _learned_policies(reference, families, tracking_uri, plugin)
    results = [
        evaluate_policy(policy, each, trials, seed, device=device)
        for policy, each in zip(policies, families, strict=True)
    ]
    result = results[0]
    payload = {
        "policy": reference,
        "task": task_name,
        "params": {**task_params, **params},
        "tuned": tuned,
        "trials": trials,
        "seed": seed,
        "mean_total_reward": result.mean_total_reward,
        "stderr": result.stderr,
        "normalized_score": result.normalized_score,
        "regret": result.regret,
        "per_episode_returns": result.per_episode_returns,
    }
    if result.success_rate is not None:
        payload["success_rate"] = result.success_rate
    if result.behaviour is not None:
        payload["behaviour"] = result.behaviour
    if heldout_params is not None:  # its metrics, adaptation curve, behaviour and task
        names = (*METRIC_FIELDS, "per_episode_returns", "behaviour")
        kept = {key: getattr(results[1], key) for key in names}
        payload["heldout"] = {**kept, "task": heldout_params}
    return payload


def _learned_policies(reference: str, families: list, tracking_uri: str | None, plugin: str | None):
    from benchmark.run.restore import load_module

    is_run_id = re.fullmatch(r"[0-9a-f]{32}", reference) is not None
    if not is_run_id and not Path(reference).exists():
        raise ConfigError(
            f"unknown policy '{reference}'; valid strategies: {', '.join(sorted(STRATEGIES))}, "
            "or a checkpoint path or an MLflow run id"
        )
    module = load_module(reference, resolve_tracking_uri(tracking_uri), plugin)
    expected = phi_dim(module.family)
    for family in families:
        require(
            phi_dim(family) == expected and family.action_width == module.family.action_width,
            f"the policy was trained on {module.family.describe()}, whose input and action sizes "
            f"differ from {family.describe()}",
        )
    return [module.make_policy() for _ in families], torch.device("cpu")


def behaviour_lines(behaviour: dict[str, Any]) -> list[str]:
    """A family's behavioural statistics as readable lines, whatever its keys, e.g.
    ``stay common rewarded: 0.974 (n=38)``.

    An integer entry ``<count>_<cell>`` (``pairs_common_rewarded``) whose ``<cell>`` also ends a
    statistic's name (``stay_common_rewarded``) counts the observations behind that statistic: it
    is shown as the statistic's ``(n=...)``, not on a line of its own.

    Args:
        behaviour: a :meth:`tasks.base.TaskFamily.behaviour_recorder` summary.
    """
    statistics = {_cell(key) for key, value in behaviour.items() if not _is_count(value)}
    counts = {
        _cell(key): value
        for key, value in behaviour.items()
        if _is_count(value) and "_" in key and _cell(key) in statistics
    }
    lines = []
    for key, value in behaviour.items():
        label = key.replace("_", " ")
        if not _is_count(value):
            count = counts.get(_cell(key))
            lines.append(f"{label}: {value:.3f}" + ("" if count is None else f" (n={count})"))
        elif not ("_" in key and _cell(key) in counts):
            lines.append(f"{label}: {value}")
    return lines


def _cell(key: str) -> str:
    return key.split("_", 1)[-1]


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
