"""``metarl-bench perf``: training speed of the suite against a plain-PyTorch parity loop.

Each row trains one algorithm through the real Lightning ``Trainer`` (no logger) and, in the same
invocation at the same settings, a parity loop (:mod:`benchmark.studies.parity`): the same network,
loss and update written as plain PyTorch with B bandits as tensors, the autograd graph kept over a
whole trial and one update per trial (as Lightning's own parity benchmarks compare against vanilla
PyTorch). The ratio shows what the suite's machinery costs (or saves). Both are timed per update
(per parity trial) and rated by the median interval (:class:`IntervalTimer`). A benchmark, not a
timed test.

Extension point: append a function ``(quick: bool) -> dict`` to :data:`PERF_ROWS` with
:func:`register_perf_row`; each row dict has at least ``algorithm``, ``task``, ``settings``.
"""

from __future__ import annotations

import functools
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from benchmark.run.config import load_run_config
from benchmark.run.datamodule import MetaRLDataModule
from benchmark.run.evaluation import evaluate_policy
from benchmark.run.runner import build_module
from benchmark.studies.parity import (
    IntervalTimer,
    a2c_parity_steps_per_second,
    parity_steps_per_second,
    rl2_parity_steps_per_second,
)

PERF_ROWS: list[Callable[[bool], dict[str, Any]]] = []

BANDIT_SETTINGS = {"arms": 5, "pulls": 100, "batch_size": 256, "hidden_size": 48, "threads": 1}


def register_perf_row(row: Callable[[bool], dict[str, Any]]) -> Callable[[bool], dict[str, Any]]:
    """Add a row function to :data:`PERF_ROWS` (decorator)."""
    PERF_ROWS.append(row)
    return row


class _UpdateClock(pl.Callback):
    """Marks the start of every batch (batch fetch = rollout, plus the update) after ``warmup``."""

    def __init__(self, warmup: int, measured: int, timer: IntervalTimer):
        self.warmup, self.measured, self.timer = warmup, measured, timer

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if self.warmup <= batch_idx <= self.warmup + self.measured:
            self.timer.mark()


def train_timed(
    algo: str,
    overrides: list[str],
    updates: int,
    timer: IntervalTimer,
    task: str = "bernoulli-bandit",
    warmup: int = 2,
) -> Any:
    """Train ``algo`` on ``task`` through the real Trainer, marking ``timer`` per update.

    Args:
        algo: registered algorithm name.
        overrides: config overrides fixing the settings (after the pair's defaults).
        updates: measured updates (after ``warmup`` warm-up updates).
        timer: receives one interval per measured update (rollout plus update).
        task: the registered family.
        warmup: updates before the first measured one.

    Returns:
        the trained module.
    """
    spec = load_run_config(algo, task, overrides)
    pl.seed_everything(0, verbose=False)
    module = build_module(spec)
    trainer = pl.Trainer(
        max_steps=(warmup + updates + 1) * module.optimizer_steps_per_batch,
        max_epochs=-1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[_UpdateClock(warmup=warmup, measured=updates, timer=timer)],
    )
    trainer.fit(module, MetaRLDataModule(seed=0))
    timer.stop()
    return module


def env_steps_per_update(module: Any) -> int:
    """Environment steps one rollout batch of ``module`` plays."""
    return module.cfg.batch_size * module.rollout_length


def lightning_steps_per_second(algo: str, overrides: list[str], updates: int) -> tuple[float, Any]:
    """Env steps per second of ``algo`` trained through the real Trainer (median update).

    Arguments as in :func:`train_timed`; returns the rate and the trained module.
    """
    timer = IntervalTimer()
    module = train_timed(algo, overrides, updates, timer)
    return timer.median_rate(env_steps_per_update(module)), module


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bandit_overrides(algo: str) -> list[str]:
    """Config overrides fixing :data:`BANDIT_SETTINGS` (LSTM-A2C's update spans whole trials)."""
    s = BANDIT_SETTINGS
    whole_trials = ["algo.rollout_steps=0"] if algo.startswith("lstm-") else []
    return [
        f"task.arms={s['arms']}",
        f"task.pulls={s['pulls']}",
        f"algo.batch_size={s['batch_size']}",
        f"algo.hidden_size={s['hidden_size']}",
        *whole_trials,
    ]


def _parity_loops() -> dict[str, Callable[[int, IntervalTimer], float]]:
    """Each learned algorithm's plain-PyTorch loop at :data:`BANDIT_SETTINGS`."""
    s = BANDIT_SETTINGS
    dims = (s["arms"], s["pulls"], s["batch_size"], s["hidden_size"])
    return {
        "lstm-a2c": lambda n, timer: parity_steps_per_second(*dims, n, timer),
        "rl2": lambda n, timer: rl2_parity_steps_per_second(*dims, n, 2, 2, timer),
        "a2c": lambda n, timer: a2c_parity_steps_per_second(*dims, n, timer),
    }


@functools.cache
def learned_rates(quick: bool) -> tuple[dict[str, float], dict[str, float], dict[str, Any]]:
    """Env steps per second of LSTM-A2C, RL² and A2C and of their parity loops, interleaved.

    Every round trains each algorithm for a few updates through the Trainer and runs its parity
    loop for as many trials, one after the other; each rate is over the median interval pooled
    over all rounds. A change in the machine's load then moves the suite, its parity loop and the
    other algorithms alike, so the ratios between them hold within one invocation.

    Returns:
        the suite's rates, the parity loops' rates (both by algorithm), and the modules trained in
        the last round.
    """
    rounds, updates = (1, 5) if quick else (5, 8)
    parity_loops = _parity_loops()
    ours = {algo: IntervalTimer() for algo in parity_loops}
    theirs = {algo: IntervalTimer() for algo in parity_loops}
    modules: dict[str, Any] = {}
    for _ in range(rounds):
        for algo, parity_loop in parity_loops.items():
            modules[algo] = train_timed(algo, _bandit_overrides(algo), updates, ours[algo])
            parity_loop(updates, theirs[algo])
    work = {algo: env_steps_per_update(module) for algo, module in modules.items()}
    s = BANDIT_SETTINGS
    rate = {algo: timer.median_rate(work[algo]) for algo, timer in ours.items()}
    parity = {algo: t.median_rate(s["batch_size"] * s["pulls"]) for algo, t in theirs.items()}
    return rate, parity, modules


def _learned_row(algo: str, quick: bool) -> dict[str, Any]:
    """One learned algorithm at :data:`BANDIT_SETTINGS`, against its parity loop."""
    rate, parity, _ = learned_rates(quick)
    settings = "arms=5 pulls=100 batch=256 hidden=48 threads=1"
    return {
        "algorithm": algo,
        "task": "bernoulli-bandit",
        "settings": settings + (" t_max=100" if algo.startswith("lstm-") else ""),
        "env_steps_per_s": rate[algo],
        "parity_env_steps_per_s": parity[algo],
        "ratio": rate[algo] / parity[algo],
        "peak_memory_mb": peak_memory_mb(),
    }


@register_perf_row
def lstm_a2c_row(quick: bool) -> dict[str, Any]:
    """LSTM-A2C (one update per trial), and evaluating its policy on 10,000 trials."""
    module = learned_rates(quick)[2]["lstm-a2c"]
    started = time.perf_counter()
    evaluate_policy(module.make_policy(), module.family, 10_000, seed=0)
    eval_seconds = time.perf_counter() - started
    return {**_learned_row("lstm-a2c", quick), "eval_trials_per_s": 10_000 / eval_seconds}


@register_perf_row
def rl2_row(quick: bool) -> dict[str, Any]:
    """RL² (PPO over whole trials: 2 epochs x 2 minibatches per batch of 256 trials).

    ``lstm_a2c_over_rl2`` is LSTM-A2C's rate over RL²'s, from the same interleaved rounds.
    """
    rate = learned_rates(quick)[0]
    return {**_learned_row("rl2", quick), "lstm_a2c_over_rl2": rate["lstm-a2c"] / rate["rl2"]}


@register_perf_row
def a2c_row(quick: bool) -> dict[str, Any]:
    """A2C, the memoryless baseline (one update per trial)."""
    return _learned_row("a2c", quick)


@register_perf_row
def lstm_a3c_row(quick: bool) -> dict[str, Any]:
    """LSTM-A3C with 1 and with 2 worker processes (LSTM-A2C's settings per worker).

    The benchmark for asynchrony: on 2 cores, 2 workers give more env steps per second than 1
    (``speedup_2_vs_1_workers`` > 1). Rates are summed over workers, measured from the reports
    the Lightning process receives after the workers start (process start-up is not timed); 1 and
    2 workers are measured alternately, best of two each. On a shared machine other sessions take
    from the 2-worker rate first (Linux groups a session's processes for CPU shares), so the row
    also shows the 1-minute load average and the env steps per CPU-second of the workers.
    """
    updates, repeats = (6, 1) if quick else (40, 2)
    overrides = _bandit_overrides("lstm-a3c")
    rates: dict[int, list[float]] = {1: [], 2: []}
    per_cpu_s: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(repeats):
        for workers in (1, 2):
            rate, module = lightning_steps_per_second(
                "lstm-a3c", [*overrides, f"algo.workers={workers}"], updates
            )
            rates[workers].append(rate)
            per_cpu_s[workers].append(int(module.env_steps) / sum(module.worker_cpu_seconds))
    one, two = max(rates[1]), max(rates[2])
    parity = learned_rates(quick)[1]["lstm-a2c"]
    return {
        "algorithm": "lstm-a3c",
        "task": "bernoulli-bandit",
        "settings": "arms=5 pulls=100 batch=256/worker hidden=48 t_max=100 workers=2 threads=1",
        "env_steps_per_s": two,
        "parity_env_steps_per_s": parity,
        "ratio": two / parity,
        "env_steps_per_s_1_worker": one,
        "speedup_2_vs_1_workers": two / one,
        # Env steps per CPU-second of the workers: equal for 1 and 2 workers means nothing
        # serialises them, so 2 idle cores give about twice the rate of one.
        "env_steps_per_worker_cpu_s_1_worker": max(per_cpu_s[1]),
        "env_steps_per_worker_cpu_s_2_workers": max(per_cpu_s[2]),
        "load_average_1min": os.getloadavg()[0],
        "peak_memory_mb": peak_memory_mb(),
    }


def strategy_row(strategy: str, params: dict[str, Any], quick: bool) -> dict[str, Any]:
    """Evaluation speed of a classical strategy on 10,000 trials x 100 pulls x 5 arms.

    Args:
        strategy: a registered strategy name.
        params: its hyperparameters (fixed: no tuning is timed).
        quick: one timed repetition instead of the best of three.
    """
    from baselines.strategies import get_strategy
    from tasks import make_task

    trials, family = 10_000, make_task("bernoulli-bandit", arms=5, pulls=100)
    times, cpu_times = [], []
    for repeat in range(1 if quick else 3):
        policy = get_strategy(strategy).build(family, params)
        started, cpu_started = time.perf_counter(), time.process_time()
        evaluate_policy(policy, family, trials, seed=repeat)
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu_started)
    setting = " ".join(f"{k}={v}" for k, v in params.items())
    return {
        "algorithm": strategy,
        "task": "bernoulli-bandit",
        "settings": f"trials={trials} pulls=100 arms=5 {setting} threads=1".replace("  ", " "),
        "trials_per_s": trials / min(times),
        "seconds": min(times),
        "cpu_seconds": min(cpu_times),
    }


register_perf_row(lambda quick: strategy_row("ucb1", {"c": 0.2}, quick))
register_perf_row(lambda quick: strategy_row("thompson", {}, quick))


SCALING_SWEEP = """name: perf-scaling
seeds: {seeds}
overrides:
  trainer.env_steps: {steps}
  eval.trials: 200
algorithms: [lstm-a2c]
tasks:
  - name: bernoulli-bandit
    variants: [{{arms: 5, pulls: 10}}]
"""


def sweep_seconds(workers: int, runs: int, env_steps: int) -> tuple[float, float]:
    """Seconds of ``metarl-bench sweep`` over ``runs`` equal LSTM-A2C runs (a fresh store).

    Args:
        workers: ``--workers``.
        runs: equal runs (seeds) in the sweep.
        env_steps: training budget of each run.

    Returns:
        the whole command's wall seconds (start-up, table and all, as a user sees them), and the
        seconds of its runs phase: from the first run's start to the last run's end, as the sweep
        recorded them in MLflow (the driver's fixed start-up and the final table not included;
        the workers start with the driver and import while it sets up, so what is left of their
        start-up when the first run starts is included).
    """
    from mlflow.tracking import MlflowClient

    from benchmark.run.tracking import ROLE

    with tempfile.TemporaryDirectory() as tmp:
        sweep = Path(tmp) / "scaling.yaml"
        sweep.write_text(SCALING_SWEEP.format(seeds=runs, steps=env_steps))
        command = [sys.executable, "-m", "benchmark", "sweep", str(sweep), "--workers"]
        started = time.perf_counter()
        subprocess.run(
            [*command, str(workers)], cwd=tmp, check=True, capture_output=True, text=True
        )
        whole = time.perf_counter() - started
        client = MlflowClient(f"sqlite:///{Path(tmp) / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("perf-scaling").experiment_id
        children = client.search_runs([experiment], f"tags.`{ROLE}` = 'child'")
        first = min(run.info.start_time for run in children)
        last = max(run.info.end_time for run in children)
        return whole, (last - first) / 1000


@register_perf_row
def sweep_scaling_row(quick: bool) -> dict[str, Any]:
    """Runs per hour of a sweep of equal runs with 2 local workers against 1 worker.

    Runs per hour are over the runs phase (:func:`sweep_seconds`); the whole command's seconds,
    which add the driver's fixed start-up (imports and store set-up, shared with the starting
    workers) and the final table, are shown beside them. Timed in the order 1, 2, 2, 1 workers
    (once each when quick), so a drift in the machine's load weighs on both; each figure is over
    the summed seconds.
    """
    runs, steps = (2, 20_000) if quick else (4, 1_000_000)
    order = (1, 2) if quick else (1, 2, 2, 1)
    whole, phase = {1: 0.0, 2: 0.0}, {1: 0.0, 2: 0.0}
    for workers in order:
        command_seconds, runs_seconds = sweep_seconds(workers, runs, steps)
        whole[workers] += command_seconds
        phase[workers] += runs_seconds
    sweeps = len(order) // 2
    return {
        "algorithm": "sweep (lstm-a2c runs)",
        "task": "bernoulli-bandit",
        "settings": f"arms=5 pulls=10 runs={runs} env_steps={steps} workers=2 vs 1",
        "runs_per_hour_1_worker": runs * 3600 * sweeps / phase[1],
        "runs_per_hour_2_workers": runs * 3600 * sweeps / phase[2],
        "speedup_2_vs_1_workers": phase[1] / phase[2],
        "command_seconds_1_worker": whole[1] / sweeps,
        "command_seconds_2_workers": whole[2] / sweeps,
        "command_speedup_2_vs_1_workers": whole[1] / whole[2],
    }


def run_perf(quick: bool = False) -> list[dict[str, Any]]:
    """Measure every registered row on one thread and print the table; return the rows."""
    torch.set_num_threads(1)
    print(
        f"machine: {os.cpu_count()} cores; torch threads: {torch.get_num_threads()}; "
        f"torch {torch.__version__}"
    )
    rows = [row(quick) for row in PERF_ROWS]
    print(format_table(rows))
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A markdown table of the rows (numbers to 3 significant figures)."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [
            f"{row[k]:.3g}" if isinstance(row.get(k), float) else str(row.get(k, "")) for k in keys
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
