"""One algorithm against each baseline of a report: P(X > baseline), the difference of per-seed
normalised scores, the minimum detectable difference and a verdict (``metarl-bench compare``).

Only normalised scores enter, and only on the settings that X and the baseline share. P(X > Y) is
:func:`benchmark.reporting.stats.probability_of_improvement_ci` over those settings; the verdict and
the MDD come from :mod:`benchmark.reporting.verdict` on each seed's mean over them.
"""

from __future__ import annotations

import math

import pandas as pd

from benchmark.reporting import stats, verdict
from benchmark.reporting.report import Report, format_number

TITLE = "{algo} against each baseline"


def add_verdicts(report: Report, algo: str) -> None:
    """Add to ``report`` the section table of ``algo`` against every other algorithm, its summary
    rows (``p_improvement_over_<B>``, ``difference_over_<B>``) and the methods sentence.

    Args:
        report: a summarised report whose runs include ``algo``'s.
        algo: the algorithm under comparison.
    """
    scores = scores_by_setting(report.runs)
    mine = scores.pop((algo, "learned"), {})
    rows, summary = [], []
    for (baseline, kind), theirs in sorted(
        scores.items(), key=lambda i: (i[0][1] != "learned", i[0])
    ):
        common = sorted(set(mine) & set(theirs))
        row = {"baseline": baseline, "kind": kind, "settings": len(common)}
        if not common:
            rows.append(row | {"verdict": "no shared setting with a normalised score"})
            continue
        x, y = [list(mine[s].values()) for s in common], [list(theirs[s].values()) for s in common]
        p, p_low, p_high = stats.probability_of_improvement_ci(x, y)
        outcome = verdict.verdict(seed_means(mine, common), seed_means(theirs, common))
        caveat = stats.bootstrap_caveat([len(v) for v in (*x, *y)], p_low, p_high)
        row[f"P({algo} > baseline) [95% CI]"] = _interval(p, p_low, p_high, caveat)
        row["difference [95% CI]"] = _interval(outcome.difference, outcome.ci_low, outcome.ci_high)
        row["MDD"] = "—" if math.isnan(outcome.mdd) else format_number(outcome.mdd)
        row["verdict"] = outcome.label
        rows.append(row)
        base = {"scope": "all settings", "task": "", "setting": f"{len(common)} settings"}
        base |= {"algorithm": algo, "kind": "learned", "n": sum(len(v) for v in x)}
        summary.append(base | _stat(f"p_improvement_over_{baseline}", p, p_low, p_high))
        summary[-1] |= {"ci_method": stats.BOOTSTRAP, "ci_note": caveat}
        summary.append(base | _stat(f"difference_over_{baseline}", *_triple(outcome)))
        note = f"verdict: {outcome.label}; MDD {format_number(outcome.mdd)}"
        summary[-1] |= {"ci_method": verdict.METHOD, "ci_note": note}
    report.summary = pd.concat([report.summary, pd.DataFrame(summary)], ignore_index=True)
    report.sections.append((TITLE.format(algo=algo), pd.DataFrame(rows)))
    report.methods.append(
        f"{algo} against each baseline: P({algo} > baseline) over the settings both ran (95% CI: "
        f"{stats.BOOTSTRAP}); difference = mean per-seed normalised score of {algo} minus the "
        f"baseline's; verdict 'better'/'worse' when the difference's 95% CI excludes 0, else "
        f"'no evidence at n={algo}'s/the baseline's seeds'; MDD = the smallest true difference "
        f"these seeds detect with power {verdict.POWER} ({verdict.METHOD})."
    )


def scores_by_setting(runs: pd.DataFrame) -> dict[tuple[str, str], dict[str, dict[int, float]]]:
    """Normalised scores: (algorithm, kind) -> setting -> seed -> score (NaN scores left out).

    Args:
        runs: one row per run (algorithm, kind, setting, seed, normalized_score).
    """
    scored = runs.dropna(subset=["normalized_score"])
    found: dict[tuple[str, str], dict[str, dict[int, float]]] = {}
    for row in scored.itertuples(index=False):
        by_setting = found.setdefault((row.algorithm, row.kind), {})
        by_setting.setdefault(row.setting, {})[int(row.seed)] = float(row.normalized_score)
    return found


def seed_means(by_setting: dict[str, dict[int, float]], settings: list[str]) -> list[float]:
    """Each seed's mean normalised score over ``settings`` (seeds present in all of them).

    Args:
        by_setting: setting -> seed -> score.
        settings: the settings to average over.
    """
    seeds = set.intersection(*(set(by_setting[s]) for s in settings))
    return [sum(by_setting[s][seed] for s in settings) / len(settings) for seed in sorted(seeds)]


def _stat(statistic: str, estimate: float, low: float, high: float) -> dict:
    return {"statistic": statistic, "estimate": estimate, "ci_low": low, "ci_high": high}


def _triple(outcome: verdict.Verdict) -> tuple[float, float, float]:
    return outcome.difference, outcome.ci_low, outcome.ci_high


def _interval(estimate: float, low: float, high: float, caveat: str = "") -> str:
    if math.isnan(low):
        return format_number(estimate)
    text = f"{format_number(estimate)} [{format_number(low)}, {format_number(high)}]"
    return f"{text} ({caveat})" if caveat else text
