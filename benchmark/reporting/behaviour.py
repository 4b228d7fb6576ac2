"""Behavioural statistics over seeds: two-step's stay pattern with confidence intervals.

Each run's evaluation records the stay table of its policy (``behaviour`` in ``evaluation.json``
and in a ledger's ``behaviour`` column; :class:`tasks.two_step.StayRecorder`). Over seeds,
:func:`stay_pattern` gives each cell's mean with a 95% Student-t interval and the two contrasts
that set a model-based learner apart (Daw et al. 2011; Wang et al. 2016):

- ``common`` = stay(common, rewarded) - stay(common, unrewarded): above 0 for a model-based
  learner (and for a model-free one);
- ``rare`` = stay(rare, rewarded) - stay(rare, unrewarded): below 0 for a model-based learner
  (a rewarded rare transition makes it switch), above 0 for a model-free one.

The pattern is shown when both intervals exclude 0 on the model-based side.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from benchmark.reporting.stats import mean_ci
from tasks import require
from tasks.two_step import STAY_CELLS

CONTRASTS = {"common": ("common_rewarded", "common_unrewarded", 1)}
CONTRASTS["rare"] = ("rare_rewarded", "rare_unrewarded", -1)
"""Each contrast: (minuend cell, subtrahend cell, the sign a model-based learner gives it)."""


def stay_pattern(behaviours: Sequence[dict[str, float]]) -> dict[str, Any]:
    """The stay table over seeds, its two contrasts and whether the model-based pattern shows.

    Args:
        behaviours: one run's ``behaviour`` dict per seed (``stay_<cell>`` for every cell of
            :data:`tasks.two_step.STAY_CELLS`).

    Returns:
        ``seeds``; ``cells``: {cell: {"mean", "ci"}} (``ci`` the half-width of the 95% t interval
        over seeds, NaN with one seed); ``contrasts``: {"common" | "rare": {"mean", "ci",
        "holds"}}, where ``holds`` means the interval lies wholly on the model-based side of 0;
        ``model_based``: both contrasts hold.
    """
    require(len(behaviours) >= 1, "stay_pattern needs the behaviour of at least one run")
    for behaviour in behaviours:
        missing = [f"stay_{cell}" for cell in STAY_CELLS if f"stay_{cell}" not in behaviour]
        require(not missing, f"a behaviour record lacks {', '.join(missing)} (not two-step's?)")
    stay = {c: np.array([float(b[f"stay_{c}"]) for b in behaviours]) for c in STAY_CELLS}
    cells = {cell: _interval(values) for cell, values in stay.items()}
    contrasts = {}
    for name, (minuend, subtrahend, sign) in CONTRASTS.items():
        interval = _interval(stay[minuend] - stay[subtrahend])
        bound = interval["mean"] - sign * interval["ci"]  # the bound nearest 0
        contrasts[name] = {**interval, "holds": bool(sign * bound > 0)}
    model_based = all(contrast["holds"] for contrast in contrasts.values())
    return {
        "seeds": len(behaviours),
        "cells": cells,
        "contrasts": contrasts,
        "model_based": model_based,
    }


def record_behaviours(records: pd.DataFrame) -> list[dict[str, float]]:
    """The parsed ``behaviour`` of every record that has one (a ledger's rows, in order).

    Args:
        records: run records (:func:`benchmark.reporting.records.read_records`).
    """
    return [json.loads(text) for text in records["behaviour"] if text]


def _interval(values: np.ndarray) -> dict[str, float]:
    mean, ci = mean_ci(values)
    return {"mean": float(mean), "ci": float(ci)}
