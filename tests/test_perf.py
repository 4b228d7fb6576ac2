"""`metarl-bench perf`: the rows measure real runs and report consistent numbers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmark.perf import format_table, sweep_scaling_row


@pytest.mark.slow
def test_sweep_scaling_row_times_real_sweeps_with_one_and_two_workers():
    row = sweep_scaling_row(quick=True)
    assert row["runs_per_hour_1_worker"] > 0 and row["runs_per_hour_2_workers"] > 0
    ratio = row["runs_per_hour_2_workers"] / row["runs_per_hour_1_worker"]
    assert row["speedup_2_vs_1_workers"] == pytest.approx(ratio)
    assert "runs=2" in row["settings"]
    assert "speedup_2_vs_1_workers" in format_table([row])


@pytest.mark.slow
def test_perf_quick_prints_every_row_as_json():
    done = subprocess.run(
        [sys.executable, "-m", "benchmark", "perf", "--quick", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    algorithms = {row["algorithm"] for row in rows}
    assert {"lstm-a2c", "lstm-a3c", "rl2", "a2c"} <= algorithms
    for row in rows:
        if "ratio" in row:
            assert row["env_steps_per_s"] > 0
            assert row["ratio"] == pytest.approx(
                row["env_steps_per_s"] / row["parity_env_steps_per_s"]
            )


def test_interval_timer_rates_the_median_interval_after_the_warm_up():
    from benchmark.perf import IntervalTimer

    timer = IntervalTimer()
    timer.marks = [0.0, 5.0, 6.0, 8.0, 9.0, 19.0]  # intervals 5 (warm-up), 1, 2, 1, 10 (a burst)
    assert timer.median_rate(100.0, skip=1) == 100.0 / 2.0
    assert timer.median_rate(100.0) == 100.0 / 2.0  # 1, 1, 2, 5, 10
    timer.marks = [0.0, 4.0, 5.0]
    assert timer.median_rate(8.0, skip=1) == 8.0
