"""The reference criteria: per setting, did a meta-learner learn what A2C cannot?

For every setting with learned runs, the *best meta-learner* is the learned algorithm with the
highest mean score, where the meta-learners are every learned algorithm except :data:`NON_META`
(``a2c``, the one learned baseline without memory of previous actions and rewards): ``rl2``,
``lstm-a2c``, ``lstm-a3c`` and any plug-in algorithm (e.g. GRU-A2C). Its score (the *measure*)
is the normalised score where every learned run of the setting has one, else the total reward
(both are per run, over its held-out trials). Three criteria are checked on it:

1. **vs a2c**: its per-seed measure against ``a2c``'s, with the Welch 95% CI of
   :func:`benchmark.reporting.verdict.verdict`; it passes only when the verdict is ``better``
   (the CI excludes 0); "no a2c runs" where the setting has none.
2. **normalised ≥ 0.8**: its mean normalised score with a Student-t 95% CI over seeds
   (:func:`benchmark.reporting.stats.mean_ci`); it passes when the mean is at least
   :data:`NORMALISED_BAR`; "no normalised score" where a run has none.
3. **later episodes beat the first** (only where the runs' ``per_episode_returns`` hold at least
   2 episodes): per run, ``d = mean(return of episodes 2..k) - return of episode 1`` (and
   ``last - first``); the paired t interval is the one-sample Student-t 95% CI of ``d`` over
   seeds; it passes when the CI's lower end is above 0. Returns are compared, higher is better:
   on the maze (+1 at the goal, ``-step_cost`` per other step) a higher return is a shorter
   episode.

:func:`check` computes them from a frame of runs (the run-records columns), :func:`add_criteria`
puts them into a :class:`benchmark.reporting.report.Report`: a section table and summary rows of
scope :data:`SCOPE` (the csv and JSON forms).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.reporting import stats
from benchmark.reporting.report import Report, bracket, natural_key
from benchmark.reporting.verdict import Verdict, verdict

NON_META = "a2c"
"""The learned algorithm the meta-learners are compared against (no memory across steps)."""
NORMALISED_BAR = 0.8
"""Criterion 2's bar on the best meta-learner's mean normalised score."""
SCOPE = "criteria"
"""The ``scope`` of the criteria's summary rows."""
TITLE = "Reference criteria"
MEASURES = {"normalized_score": "normalised score", "total_reward": "total reward"}
MARKS = {True: "✓", False: "✗", None: "?"}
"""How the ``criteria`` column shows a passed, failed and unchecked criterion."""
PAIRED = "paired Student t interval over seeds (one-sample t on each run's difference)"


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% CI over n runs (the bounds are NaN with fewer than 2 runs)."""

    estimate: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class SettingCriteria:
    """The three criteria of one setting, for its best meta-learner."""

    task: str
    setting: str
    best: str | None
    """The best meta-learner (None: the setting's learned runs are all ``a2c``'s)."""
    measure: str
    """``normalized_score`` or ``total_reward``: what chose the best, what criterion 1 compares."""
    n: int
    """The best meta-learner's runs."""
    versus: Verdict | None
    """Criterion 1 (None: no ``a2c`` runs)."""
    normalised: Interval | None
    """Criterion 2 (None: a run of the best has no normalised score)."""
    later: Interval | None
    """Criterion 3, mean of episodes 2..k minus episode 1 (None: fewer than 2 episodes)."""
    last: Interval | None
    """Last episode minus the first (None: fewer than 2 episodes)."""

    def difference(self) -> Interval | None:
        """Criterion 1's difference from ``a2c`` with its Welch CI (None: no ``a2c`` runs)."""
        if self.versus is None:
            return None
        outcome = self.versus
        return Interval(outcome.difference, outcome.ci_low, outcome.ci_high, outcome.n_x)

    def passed(self) -> dict[int, bool | None]:
        """Each applicable criterion (1, 2, 3): whether it passed, None where it could not be
        checked (no ``a2c`` runs, no normalised score); 3 is absent with fewer than 2 episodes."""
        result: dict[int, bool | None] = {1: None, 2: None}
        if self.versus is not None:
            result[1] = self.versus.label == "better"
        if self.normalised is not None:
            result[2] = self.normalised.estimate >= NORMALISED_BAR
        if self.later is not None:
            result[3] = self.later.low > 0
        return result


def check(runs: pd.DataFrame) -> list[SettingCriteria]:
    """The criteria of every setting with learned runs, in the report's setting order.

    Args:
        runs: one row per run: ``algorithm``, ``kind``, ``task``, ``setting``, ``seed``,
            ``total_reward``, ``normalized_score`` and, for criterion 3, ``per_episode_returns``
            (JSON list; blank or absent: no episodes).
    """
    learned = runs[runs["kind"] == "learned"]
    settings = sorted(learned["setting"].unique(), key=natural_key)
    return [_setting(learned[learned["setting"] == setting]) for setting in settings]


def _setting(runs: pd.DataFrame) -> SettingCriteria:
    task, setting = runs["task"].iloc[0], runs["setting"].iloc[0]
    measure = "normalized_score" if runs["normalized_score"].notna().all() else "total_reward"
    meta = runs[runs["algorithm"] != NON_META]
    if meta.empty:
        return SettingCriteria(task, setting, None, measure, 0, None, None, None, None)
    means = meta.groupby("algorithm")[measure].mean()
    best = str(means.idxmax())
    mine = meta[meta["algorithm"] == best].sort_values("seed")
    theirs = runs[runs["algorithm"] == NON_META][measure].to_numpy(float)
    versus = verdict(mine[measure].to_numpy(float), theirs) if len(theirs) else None
    scores = mine["normalized_score"].to_numpy(float)
    normalised = None if np.isnan(scores).any() else _interval(scores)
    later, last = _episode_gains(mine)
    return SettingCriteria(task, setting, best, measure, len(mine), versus, normalised, later, last)


def _episode_gains(runs: pd.DataFrame) -> tuple[Interval | None, Interval | None]:
    """Paired intervals over runs of (mean of episodes 2..k - episode 1) and (last - first)."""
    texts = runs.get("per_episode_returns", [])
    curves = [np.asarray(json.loads(text), float) for text in texts if text]
    curves = [curve for curve in curves if len(curve) >= 2]
    if not curves:
        return None, None
    later = [curve[1:].mean() - curve[0] for curve in curves]
    last = [curve[-1] - curve[0] for curve in curves]
    return _interval(later), _interval(last)


def _interval(values) -> Interval:
    mean, half = stats.mean_ci(np.asarray(values, float))
    return Interval(float(mean), float(mean - half), float(mean + half), len(values))


def criteria_table(results: list[SettingCriteria]) -> pd.DataFrame:
    """The section's display table: one row per setting.

    Args:
        results: :func:`check` output.
    """
    rows = []
    for result in results:
        row = {"setting": result.setting, "best meta-learner": result.best or "none (only a2c)"}
        row |= {"measure": MEASURES[result.measure], "n": result.n}
        row["vs a2c: difference [95% CI]"] = _versus_cell(result)
        row["normalised [95% CI]"] = _normalised_cell(result)
        row["later − first episode [paired 95% CI]"] = _later_cell(result)
        row["last − first"] = _cell(result.last) if result.last else "—"
        passed = result.passed() if result.best else {}
        row["criteria"] = " ".join(f"{k} {MARKS[ok]}" for k, ok in passed.items()) or "—"
        rows.append(row)
    return pd.DataFrame(rows)


def _versus_cell(result: SettingCriteria) -> str:
    if result.best is None:
        return "—"
    if result.versus is None:
        return f"no {NON_META} runs: unchecked"
    status = "pass" if result.passed()[1] else "fail"
    return f"{_cell(result.difference())} {result.versus.label}: {status}"


def _normalised_cell(result: SettingCriteria) -> str:
    if result.best is None:
        return "—"
    if result.normalised is None:
        return "no normalised score: unchecked"
    ok = result.passed()[2]
    sign = "≥" if ok else "<"
    return f"{_cell(result.normalised)} {sign} {NORMALISED_BAR}: {'pass' if ok else 'fail'}"


def _later_cell(result: SettingCriteria) -> str:
    later = result.later
    if later is None:
        return "— (fewer than 2 episodes per trial)"
    if math.isnan(later.low):
        return f"{_cell(later)} no CI at n={later.n}: fail"
    status = "CI above 0: pass" if result.passed()[3] else "CI reaches 0: fail"
    return f"{_cell(later)} {status}"


def _cell(interval: Interval) -> str:
    return bracket(
        {"estimate": interval.estimate, "ci_low": interval.low, "ci_high": interval.high}
    )


def summary_rows(results: list[SettingCriteria]) -> pd.DataFrame:
    """The criteria as long summary rows (scope :data:`SCOPE`), one per criterion and setting;
    ``ci_note`` holds the verdict.

    Args:
        results: :func:`check` output.
    """
    rows = []
    for result in results:
        if result.best is None:
            continue
        base = {"scope": SCOPE, "task": result.task, "setting": result.setting}
        base |= {"algorithm": result.best, "kind": "learned"}
        passed = result.passed()
        method = f"Welch two-sample t interval on per-seed {MEASURES[result.measure]}"
        statistic = f"criterion1_difference_over_{NON_META}"
        label = result.versus.label if result.versus else f"no {NON_META} runs"
        rows.append(_row(base, statistic, result.difference(), method, label))
        note = {True: "pass", False: "fail", None: "no normalised score"}[passed[2]]
        rows.append(
            _row(base, "criterion2_normalized_score", result.normalised, stats.T_INTERVAL, note)
        )
        if result.later is not None:
            note = "pass" if passed[3] else "fail"
            rows.append(
                _row(base, "criterion3_later_minus_first_episode", result.later, PAIRED, note)
            )
            rows.append(_row(base, "criterion3_last_minus_first_episode", result.last, PAIRED, ""))
    return pd.DataFrame(rows)


def _row(base: dict, statistic: str, interval: Interval | None, method: str, note: str) -> dict:
    row = base | {"statistic": statistic, "n": interval.n if interval else 0}
    row |= {"estimate": interval.estimate if interval else math.nan}
    row |= {"ci_low": interval.low if interval else math.nan}
    row |= {"ci_high": interval.high if interval else math.nan}
    return row | {"ci_method": method, "ci_note": note}


def methods_sentence() -> str:
    """How the criteria are computed, for the report's methods text."""
    return (
        f"{TITLE}, per setting with learned runs, for its best meta-learner (the learned "
        f"algorithm other than {NON_META} with the highest mean normalised score, or total reward "
        f"where a learned run of the setting has no normalised score; the measure is named): "
        f"(1) its per-seed measure beats {NON_META}'s, Welch 95% CI of the difference above 0; "
        f"(2) its mean normalised score is at least {NORMALISED_BAR} (95% CI: "
        f"{stats.T_INTERVAL}); (3) with 2 or more episodes per trial, its later episodes beat the "
        "first: per run, d = mean return of episodes 2..k minus episode 1's (also last minus "
        f"first), {PAIRED}, 95% CI above 0. Returns are compared, higher is better (on a maze a "
        "higher return is a shorter episode). Column 'criteria': ✓ passed, ✗ failed, ? not "
        f"checkable (no {NON_META} runs, no normalised score)."
    )


def add_criteria(report: Report, runs: pd.DataFrame | None = None) -> None:
    """Add the criteria section, its summary rows and its methods sentence to ``report``.

    Args:
        report: a summarised report.
        runs: the runs to check, with ``per_episode_returns`` (default: ``report.runs``).
    """
    results = check(report.runs if runs is None else runs)
    report.sections.append((TITLE, criteria_table(results)))
    report.summary = pd.concat([report.summary, summary_rows(results)], ignore_index=True)
    report.methods.append(methods_sentence())
    report.command += " --criteria"
