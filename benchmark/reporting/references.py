"""Scores normalised to a measured upper reference: the same algorithm, task revealed.

A family without an oracle reference (the MuJoCo ``halfcheetah-dir``, ``-params`` families)
reports a NaN normalised score. Its upper reference is measured instead: runs of the same algorithm
and budget with ``task.reveal=true``, whose policy sees the trial's task parameters and need not
infer them. In a table built from runs (MLflow or run records):

- the revealed runs become rows ``<algorithm> (task revealed)`` of kind ``reference`` in the
  setting they reveal (the setting without ``reveal``);
- U, the upper reference of (setting, algorithm), is the mean total reward of those runs over
  their seeds; R is each run's random reference (``random_reference``: the random policy's expected
  total on the run's own held-out tasks);
- where the run's oracle reference is NaN (or, with ``revealed``, wherever U exists), the
  normalised score is ``(x - R) / (U - R)`` (:func:`reference_score`); NaN without a revealed run
  of the same algorithm and setting, or where U <= R.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

REVEAL = "reveal"
"""The task key that reveals the task (``tasks.mujoco.common.MujocoConfig.reveal``)."""
NORMALISE_TO = ("oracle", "revealed")
"""``oracle``: the family's oracle, the revealed-task reference only where the oracle is NaN;
``revealed``: the revealed-task reference wherever one exists."""
KIND = "reference"
"""The kind of the revealed runs' rows."""


def reference_score(total: np.ndarray, random: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """``(total - random) / (upper - random)``: 0 at the random reference, 1 at the upper one.

    Args:
        total: the runs' mean total rewards.
        random: their random references (same shape, or a scalar).
        upper: their upper references (same shape, or a scalar).

    Returns:
        the scores, NaN where ``upper <= random`` or an input is NaN.
    """
    total, random, upper = (np.asarray(v, dtype=float) for v in (total, random, upper))
    span = upper - random
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(span > 0, (total - random) / np.where(span > 0, span, 1.0), np.nan)


def split_setting(setting: str) -> tuple[str, bool]:
    """A setting label without its ``reveal=`` entry, and whether that entry was true.

    Args:
        setting: a label such as ``halfcheetah-dir episode_steps=200 reveal=True ctrl_cost=0.05``.
    """
    tokens = setting.split(" ")
    prefix = f"{REVEAL}="
    revealed = any(t.lower() == f"{prefix}true" for t in tokens)
    return " ".join(t for t in tokens if not t.startswith(prefix)), revealed


def revealed_label(algorithm: str) -> str:
    """The row label of an algorithm's revealed-task runs.

    Args:
        algorithm: the algorithm's name.
    """
    return f"{algorithm} (task revealed)"


def has_revealed(runs: pd.DataFrame) -> bool:
    """Whether any run was trained with the task revealed.

    Args:
        runs: one row per run, with a ``setting`` column.
    """
    return any(split_setting(s)[1] for s in runs["setting"])


def upper_references(runs: pd.DataFrame) -> dict[tuple[str, str], float]:
    """U per (setting without ``reveal``, algorithm): the mean total reward of its revealed runs.

    Args:
        runs: one row per run (``setting``, ``algorithm``, ``total_reward``).
    """
    split = [split_setting(s) for s in runs["setting"]]
    revealed = runs.assign(base=[b for b, _ in split])[[r for _, r in split]]
    means = revealed.groupby(["base", "algorithm"])["total_reward"].mean()
    return {key: float(value) for key, value in means.items()}


def with_revealed_references(
    runs: pd.DataFrame, normalise_to: str = "oracle"
) -> tuple[pd.DataFrame, list[str]]:
    """The runs with revealed-task rows relabelled and scores normalised to their references.

    Args:
        runs: one row per run (``algorithm``, ``kind``, ``setting``, ``total_reward``,
            ``normalized_score``; ``random_reference`` and ``oracle_reference`` where known).
        normalise_to: one of :data:`NORMALISE_TO`.

    Returns:
        the runs (a copy; settings without ``reveal``) and the methods sentences to print (none
        when no run was revealed).
    """
    split = [split_setting(s) for s in runs["setting"]]
    revealed = np.array([r for _, r in split], dtype=bool)
    upper = upper_references(runs) if revealed.any() else {}
    runs = runs.assign(setting=[base for base, _ in split])
    if not revealed.any():
        return runs, []
    keys = zip(runs["setting"], runs["algorithm"], strict=True)
    u = np.array([upper.get(key, np.nan) for key in keys])
    oracle = _column(runs, "oracle_reference")
    replace = ~np.isnan(u) & (np.isnan(oracle) | (normalise_to == "revealed"))
    scores = reference_score(
        runs["total_reward"].to_numpy(float), _column(runs, "random_reference"), u
    )
    runs["normalized_score"] = np.where(replace, scores, runs["normalized_score"].to_numpy(float))
    settings = sorted(runs.loc[replace, "setting"].unique())
    notes = [methods_sentence(settings)] if settings else []
    notes += budget_notes(runs, revealed)
    runs.loc[revealed, "algorithm"] = runs.loc[revealed, "algorithm"].map(revealed_label)
    runs.loc[revealed, "kind"] = KIND
    return runs, notes


def methods_sentence(settings: list[str]) -> str:
    """The methods text of scores normalised to the revealed-task reference.

    Args:
        settings: the settings whose scores are so normalised.
    """
    return (
        "Normalised to the revealed-task reference in " + "; ".join(settings) + ": random = 0, "
        "1 = the mean total reward over seeds of the same algorithm trained with the task's "
        "parameters in its observation (task.reveal=true; rows '<algorithm> (task "
        "revealed)', kind reference); NaN where that algorithm has no such runs."
    )


def budget_notes(runs: pd.DataFrame, revealed: np.ndarray) -> list[str]:
    """A sentence per (setting, algorithm) whose revealed runs trained for another number of env
    steps (median over seeds) than its other runs: that reference is not at the same budget.

    Args:
        runs: one row per run (settings without ``reveal``, algorithms by their own names),
            with ``env_steps`` where known (run records).
        revealed: which rows are revealed-task runs.
    """
    steps = _column(runs, "env_steps")
    base = pd.DataFrame(
        {"setting": runs["setting"], "algorithm": runs["algorithm"], "steps": steps}
    )
    ours = base[~revealed].groupby(["setting", "algorithm"])["steps"].median()
    theirs = base[revealed].groupby(["setting", "algorithm"])["steps"].median()
    notes = []
    for key in sorted(set(ours.index) & set(theirs.index)):
        if not np.isnan(ours[key]) and not np.isnan(theirs[key]) and ours[key] != theirs[key]:
            notes.append(
                f"{key[1]} in {key[0]}: the revealed-task reference trained {theirs[key]:,.0f} "
                f"env steps, the runs it normalises {ours[key]:,.0f} (not the same budget)."
            )
    return notes


def _column(runs: pd.DataFrame, name: str) -> np.ndarray:
    """A numeric column of ``runs`` (all NaN where absent)."""
    if name not in runs:
        return np.full(len(runs), np.nan)
    return pd.to_numeric(runs[name], errors="coerce").to_numpy(float)
