"""`metarl-bench perf`: the rows measure real runs and report consistent numbers."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from benchmark.studies.perf import format_table, sweep_scaling_row


@pytest.mark.slow
def test_sweep_scaling_row_times_real_sweeps_with_one_and_two_workers():
    row = sweep_scaling_row(quick=True)
    assert row["runs_per_hour_1_worker"] > 0 and row["runs_per_hour_2_workers"] > 0
    ratio = row["runs_per_hour_2_workers"] / row["runs_per_hour_1_worker"]
    assert row["speedup_2_vs_1_workers"] == pytest.approx(ratio)
    assert "runs=2" in row["settings"]
    # the runs phase is part of the whole command, which adds the driver's start-up and table
    assert 0 < 2 * 3600 / row["runs_per_hour_1_worker"] < row["command_seconds_1_worker"]
    assert 0 < 2 * 3600 / row["runs_per_hour_2_workers"] < row["command_seconds_2_workers"]
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


def test_interval_timer_rates_the_median_interval_pooled_over_runs(monkeypatch):
    import benchmark.studies.parity as parity

    clock = iter([0.0, 1.0, 3.0, 100.0, 101.0, 111.0])  # two runs of three marks, a pause between
    monkeypatch.setattr(parity.time, "perf_counter", lambda: next(clock))
    timer = parity.IntervalTimer()
    for _ in range(2):
        for _ in range(3):
            timer.mark()
        timer.stop()
    assert timer.intervals == [1.0, 2.0, 1.0, 10.0]  # the pause (97 s) is not an interval
    assert timer.median_rate(100.0) == 100.0 / 2.0  # sorted 1, 1, 2, 10: the median is 2


def test_interval_timer_marks_wall_clock_intervals_and_restarts_after_stop():
    from benchmark.studies.parity import IntervalTimer

    timer = IntervalTimer()
    timer.mark()
    timer.mark()
    timer.stop()
    time.sleep(0.05)
    timer.mark()  # opens a new run: the 50 ms pause is not an interval
    timer.mark()
    assert len(timer.intervals) == 2
    assert all(0 <= interval < 0.05 for interval in timer.intervals)
