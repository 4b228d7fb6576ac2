"""Resolve ``evaluate``'s POLICY argument (a strategy, a checkpoint or a run id) and evaluate it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from baselines.strategies import STRATEGIES, get_strategy
from benchmark.run.config import load_task_config
from benchmark.run.evaluation import evaluate_policy
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
        overrides: ``task.*`` (and, for a strategy, ``strategy.*``) key=value strings.
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
    if reference in STRATEGIES:
        strategy = get_strategy(reference)
        task_params, params = load_task_config(task_name, overrides, strategy.config)
        family = make_task(task_name, **task_params)
        if tuned_param(reference, explicit_strategy_keys(overrides), task_name) is not None:
            tuning = tune_strategy(reference, family, tune_trials or trials, seed, params)
            params, tuned = {**params, **tuning.tuned}, tuning.tuned
        policy = strategy.build(family, params)
        device = "cpu"
    else:
        task_params, params = load_task_config(task_name, overrides)
        family = make_task(task_name, **task_params)
        policy, device = _learned_policy(reference, family, tracking_uri, plugin)
    result = evaluate_policy(policy, family, trials, seed, device=device)
    return {
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


def _learned_policy(reference: str, family, tracking_uri: str | None, plugin: str | None):
    from benchmark.run.restore import load_module

    is_run_id = re.fullmatch(r"[0-9a-f]{32}", reference) is not None
    if not is_run_id and not Path(reference).exists():
        raise ConfigError(
            f"unknown policy '{reference}'; valid strategies: {', '.join(sorted(STRATEGIES))}, "
            "or a checkpoint path or an MLflow run id"
        )
    module = load_module(reference, resolve_tracking_uri(tracking_uri), plugin)
    expected = phi_dim(module.family)
    require(
        phi_dim(family) == expected and family.action_width == module.family.action_width,
        f"the policy was trained on {module.family.describe()}, whose input and action sizes "
        f"differ from {family.describe()}",
    )
    return module.make_policy(), torch.device("cpu")
