"""Summarise the RL² Table 1 reporting ledger into the markdown table of rl2_table1_learned.md.

Per setting: the mean over seeds with a 95% Student t CI, and the paper's selection rule (the seed
with the best final training return, the mean of its last 5 logged ``train/trial_return`` values,
evaluated on its held-out trials). Usage: ``python summarise_rl2_table1.py LEDGER TRACKING_URI``.
"""

from __future__ import annotations

import csv
import math
import sys
from collections import defaultdict

from mlflow.tracking import MlflowClient
from scipy import stats

PUBLISHED = {"5x10": 6.7, "10x10": 6.7, "50x10": 6.8}
HEADER = (
    "| setting (arms x pulls) | n | mean ± 95% CI | published | best-by-training-return seed: "
    "test ± SE | env steps | wall s (mean) | CPU s (mean) |"
)


def read_runs(ledger: str, store: str) -> dict[str, list[dict]]:
    """The ledger's runs by setting, each with its final training return from the store."""
    client, runs = MlflowClient(store), defaultdict(list)
    with open(ledger, newline="") as handle:
        for row in csv.DictReader(handle):
            history = client.get_metric_history(row["run_id"], "train/trial_return")[-5:]
            train = sum(m.value for m in history) / max(1, len(history))
            runs[row["label"].split("-")[2]].append({**row, "train": train})
    return runs


def table_row(setting: str, runs: list[dict]) -> str:
    """One markdown row: n, mean ± CI, published, the selected seed, steps and times."""
    means = [float(run["mean_total_reward"]) for run in runs]
    n, mean = len(runs), sum(means) / len(runs)
    ci = stats.t.ppf(0.975, n - 1) * stats.tstd(means) / math.sqrt(n) if n > 1 else math.nan
    best = max(runs, key=lambda run: run["train"])
    seeds = ",".join(run["seed"] for run in runs)
    wall = sum(float(run["wall_s"]) for run in runs) / n
    cpu = sum(float(run["cpu_s"]) for run in runs) / n
    arms, pulls = setting.split("x")
    selected = f"seed {best['seed']}: {float(best['mean_total_reward']):.3f} ± "
    selected += f"{float(best['stderr']):.3f}"
    cells = [f"{arms} x {pulls}", f"{n} (seeds {seeds})", f"{mean:.3f} ± {ci:.3f}"]
    cells += [str(PUBLISHED[setting]), selected, f"{int(runs[0]['env_steps']):,}"]
    cells += [f"{wall:.0f}", f"{cpu:.0f}"]
    return "| " + " | ".join(cells) + " |"


def main(ledger: str, store: str) -> None:
    """Print the table."""
    runs = read_runs(ledger, store)
    print(HEADER)
    print("|---" * 8 + "|")
    for setting in PUBLISHED:
        if runs.get(setting):
            print(table_row(setting, sorted(runs[setting], key=lambda run: int(run["seed"]))))


if __name__ == "__main__":
    main(*sys.argv[1:3])
