"""The suite's numbers on fixed seeds, through the CLI only, for the golden test.

``capture`` evaluates every classical strategy on every family it supports among a few small
settings, trains each bit-reproducible learned algorithm briefly, and keeps the numbers. The
golden file was written by ``python tests/golden_support.py`` before the package layout changed;
the test checks that the numbers stay exactly the same.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

from benchmark.cli import main

GOLDEN = Path(__file__).parent / "golden" / "numbers.json"
SETTINGS = {
    "bernoulli-bandit": ["task.arms=3", "task.pulls=8"],
    "dependent-bandit": ["task.difficulty=medium", "task.pulls=10"],
    "tabular-mdp": ["task.states=3", "task.actions=2", "task.horizon=4", "task.episodes=3"],
    "two-step": [],
}
LEARNED = ["a2c", "lstm-a2c", "rl2"]
RUN = ["task.arms=3", "task.pulls=5", "algo.batch_size=16", "trainer.env_steps=960"]
NUMBERS = ("mean_total_reward", "stderr", "normalized_score", "regret")


def cli_json(argv: list[str]) -> dict | None:
    """The JSON summary of a CLI command, or None when it exits non-zero (e.g. unsupported)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    if code != 0:
        return None
    return json.loads(out.getvalue().strip().splitlines()[-1])


def strategy_numbers() -> dict[str, dict]:
    """Every (strategy, family) pair that evaluates: its numbers on 200 held-out trials."""
    from baselines.strategies import strategy_names

    numbers = {}
    for family, overrides in SETTINGS.items():
        for name in strategy_names():
            argv = ["evaluate", name, family, *overrides, "--trials", "200", "--seed", "3"]
            payload = cli_json([*argv, "--tune-trials", "50", "--json"])
            if payload is not None:
                kept = {key: payload[key] for key in NUMBERS}
                numbers[f"{name} | {family}"] = {**kept, "tuned": payload["tuned"]}
    return numbers


def learned_numbers() -> dict[str, dict]:
    """A short run of each bit-reproducible learned algorithm: its evaluation and env steps."""
    numbers = {}
    for algo in LEARNED:
        payload = cli_json(
            ["run", algo, "bernoulli-bandit", *RUN, "seed=4", "eval.trials=200", "--json"]
        )
        assert payload is not None, algo
        numbers[algo] = {key: payload[key] for key in (*NUMBERS, "env_steps")}
    return numbers


REPRODUCE = {
    "rl2-table1": ["--settings", "10x5", "--columns", "classical"],
    "rl2-table2": ["--settings", "10", "--columns", "classical"],
}
CELL = ("mean", "stderr", "trials", "z", "flagged", "tuned")


def reproduce_numbers(out: Path) -> dict[str, list[dict]]:
    """Both ``reproduce … --budget smoke`` tables' classical cells (timings left out)."""
    import pandas as pd

    from benchmark.studies.registry import get_table

    numbers = {}
    for table, options in REPRODUCE.items():
        argv = ["reproduce", table, "--budget", "smoke", *options, "--out", str(out), "--json"]
        summary = cli_json([*argv, "--workers", "1"])
        assert summary is not None, table
        frame = pd.read_csv(summary["csv"], keep_default_na=False)
        classical = [column.name for column in get_table(table).classical_columns]
        rows = frame[frame["column"].isin(classical)][["column", *CELL]].to_dict(orient="records")
        numbers[table] = [{key: _plain(value) for key, value in row.items()} for row in rows]
    return numbers


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def capture(out: Path) -> dict:
    """The golden numbers (run in a scratch working directory: runs go to its MLflow store).

    Args:
        out: a scratch directory for the reproduced tables.
    """
    return {
        "strategies": strategy_numbers(),
        "learned": learned_numbers(),
        "reproduce": reproduce_numbers(out),
    }


if __name__ == "__main__":
    import os
    import tempfile

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else GOLDEN
    target = target.resolve()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        numbers = capture(Path(scratch) / "tables")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(numbers, indent=1, sort_keys=True) + "\n")
    print(f"wrote {target}: {len(numbers['strategies'])} strategy cells")
