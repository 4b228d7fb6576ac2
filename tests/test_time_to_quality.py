"""Time to quality: the clock stops training at the target and does not count its checks."""

from __future__ import annotations

from benchmark.studies.time_to_quality import time_to_quality

SMALL = ("task.arms=2", "task.pulls=4", "algo.batch_size=16", "trainer.env_steps=6400")


def test_a_reachable_target_stops_training_at_the_first_check_above_it():
    run = time_to_quality(
        "lstm-a2c", 0, target=-1.0, every_env_steps=640, trials=50, overrides=SMALL
    )
    assert run.reached and len(run.curve) == 1
    steps, seconds, mean = run.curve[0]
    assert run.env_steps == steps >= 640 and steps < 6400
    assert 0 < run.train_seconds == seconds and mean >= -1.0
    assert 0 < run.train_cpu_seconds < 10 * run.train_seconds


def test_an_unreachable_target_runs_the_whole_budget_and_reports_it():
    run = time_to_quality(
        "lstm-a2c", 0, target=5.0, every_env_steps=1280, trials=50, overrides=SMALL
    )
    assert not run.reached and run.train_seconds != run.train_seconds  # nan
    assert run.env_steps >= 6400
    checked = [steps for steps, _, _ in run.curve]
    assert checked == sorted(checked) and len(checked) == 5
    assert all(mean <= 4.0 for _, _, mean in run.curve)  # 4 pulls of reward at most 1
    seconds = [s for _, s, _ in run.curve]
    assert seconds == sorted(seconds)
