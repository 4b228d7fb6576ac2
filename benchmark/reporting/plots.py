"""Plots of a sweep (matplotlib, Agg): learning and adaptation curves, one figure per setting.

- Learning curves: ``train/trial_return`` (mean total reward of the trials completed in training)
  against environment steps, mean ± 95% CI over seeds, one line per learned algorithm.
- Adaptation curves: the mean return per episode index within a held-out trial (the
  ``per_episode_returns`` of each run's ``evaluation.json``), mean ± 95% CI over seeds, one line per
  algorithm or strategy. A meta-learner's curve rises within the trial; a memoryless one stays flat.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from benchmark.reporting.stats import mean_ci  # noqa: E402

LEARNING_METRIC = "train/trial_return"


SLUG_LENGTH = 120
"""The longest slug kept whole; with the plot's prefix and ``.png`` the name stays well inside the
255 bytes a file name may have."""


def slug(setting: str) -> str:
    """A file-name-safe form of a setting label (``bernoulli-bandit_arms-5_pulls-10``); a longer
    one than ``SLUG_LENGTH`` is cut and ends with 10 hex digits of the whole label's SHA-256, so
    settings that differ only past the cut keep apart.

    Args:
        setting: a label such as ``bernoulli-bandit arms=5 pulls=10``.
    """
    text = re.sub(r"[^A-Za-z0-9_.-]+", "_", setting.replace("=", "-").replace(" ", "_"))
    if len(text) <= SLUG_LENGTH:
        return text
    digest = hashlib.sha256(setting.encode()).hexdigest()[:10]
    return f"{text[: SLUG_LENGTH - 11]}_{digest}"


def plot_sweep(client: MlflowClient, runs: pd.DataFrame, folder: Path) -> list[Path]:
    """Draw both kinds of curves for every setting of ``runs`` into ``folder``.

    Args:
        client: the tracking client that holds the runs.
        runs: one row per selected run with ``run_id``, ``algorithm``, ``kind``, ``setting``.
        folder: where the PNG files go (created).

    Returns:
        the files written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for setting, group in runs.groupby("setting", sort=True):
        learned = group[group["kind"] == "learned"]
        if not learned.empty:
            curves = {a: _histories(client, g) for a, g in learned.groupby("algorithm")}
            path = folder / f"learning_{slug(setting)}.png"
            if _draw(curves, setting, "environment steps", "trial return (training)", path):
                written.append(path)
        curves = {a: _adaptation(client, g) for a, g in group.groupby("algorithm")}
        classical = set(group.loc[group["kind"] == "classical", "algorithm"])
        path = folder / f"adaptation_{slug(setting)}.png"
        ylabel = "mean return (held-out trials)"
        if _draw(curves, setting, "episode index within the trial", ylabel, path, classical):
            written.append(path)
    return written


def _histories(client: MlflowClient, runs: pd.DataFrame) -> pd.DataFrame:
    """Steps x seeds of the learning metric, keeping the steps every seed logged."""
    columns = {}
    for run_id, seed in zip(runs["run_id"], runs["seed"], strict=True):
        history = client.get_metric_history(run_id, LEARNING_METRIC)
        columns[seed] = pd.Series({m.step: m.value for m in history}, dtype=float)
    return pd.DataFrame(columns).dropna()


def _adaptation(client: MlflowClient, runs: pd.DataFrame) -> pd.DataFrame:
    """Episode index x seeds of the held-out per-episode returns."""
    columns = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run_id, seed in zip(runs["run_id"], runs["seed"], strict=True):
            path = client.download_artifacts(run_id, "evaluation.json", tmp)
            returns = json.loads(Path(path).read_text()).get("per_episode_returns", [])
            columns[seed] = pd.Series(returns, dtype=float)
    frame = pd.DataFrame(columns).dropna()
    frame.index = frame.index + 1
    return frame


def _draw(
    curves: dict[str, pd.DataFrame],
    title: str,
    xlabel: str,
    ylabel: str,
    path: Path,
    dashed: set[str] = frozenset(),
) -> bool:
    """One figure, a line and a 95% band per algorithm (``dashed``: classical strategies)."""
    curves = {name: frame for name, frame in curves.items() if not frame.empty}
    if not curves:
        return False
    figure, axes = plt.subplots(figsize=(8.0, 4.2), dpi=100)
    for name, frame in sorted(curves.items(), key=lambda item: (item[0] in dashed, item[0])):
        x = frame.index.to_numpy()
        mean, half = mean_ci(frame.to_numpy(), axis=1)
        half = np.nan_to_num(half)
        style = {
            "linestyle": "--" if name in dashed else "-",
            "marker": "." if len(x) < 30 else None,
        }
        line = axes.plot(x, mean, label=f"{name} (n={frame.shape[1]})", **style)
        axes.fill_between(x, mean - half, mean + half, alpha=0.15, color=line[0].get_color())
    axes.set(title=f"{title} (mean ± 95% CI over seeds)", xlabel=xlabel, ylabel=ylabel)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True
