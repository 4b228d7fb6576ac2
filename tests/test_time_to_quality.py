"""Time to quality: the clock stops training at the target and does not count its checks."""

from __future__ import annotations

import math

from benchmark.studies.time_to_quality import (
    RL2_5X100,
    TARGET_5X100,
    Target,
    time_to_quality,
    time_to_targets,
)

SMALL = ("task.arms=2", "task.pulls=4", "algo.batch_size=16", "trainer.env_steps=6400")


def test_a_reachable_target_stops_training_at_the_first_check_above_it():
    run = time_to_quality(
        "lstm-a2c", 0, target=-1.0, every_env_steps=640, trials=50, overrides=SMALL
    )
    assert run.reached and len(run.curve) == 1
    steps, seconds, mean, _ = run.curve[0]
    assert run.env_steps == steps >= 640 and steps < 6400
    assert 0 < run.train_seconds == seconds and mean >= -1.0
    assert 0 < run.train_cpu_seconds < 10 * run.train_seconds


def test_an_unreachable_target_runs_the_whole_budget_and_reports_it():
    run = time_to_quality(
        "lstm-a2c", 0, target=5.0, every_env_steps=1280, trials=50, overrides=SMALL
    )
    assert not run.reached and run.train_seconds != run.train_seconds  # nan
    assert run.env_steps >= 6400
    checked = [steps for steps, *_ in run.curve]
    assert checked == sorted(checked) and len(checked) == 5
    assert all(mean <= 4.0 for _, _, mean, _ in run.curve)  # 4 pulls of reward at most 1
    seconds = [s for _, s, *_ in run.curve]
    assert seconds == sorted(seconds)


def test_the_published_target_is_reached_within_3_standard_errors():
    rl2 = Target("RL² published", RL2_5X100, published=True)
    assert RL2_5X100 == 78.7 and TARGET_5X100 == 74.4
    # Table 1's z: ours, the published 1000-trial SE from our spread, and the rounding to 0.1.
    published_sd = math.hypot(0.5 * math.sqrt(1000 / 1000), 0.05 / math.sqrt(3))
    scale = math.hypot(0.5, published_sd)
    assert rl2.reached(78.7 - 2.9 * scale, 0.5, 1000)
    assert not rl2.reached(78.7 - 3.1 * scale, 0.5, 1000)
    assert not Target("threshold", 74.4).reached(74.3, 5.0, 1000)


def test_one_training_run_is_timed_to_every_target():
    reachable, unreachable = Target("low", -1.0), Target("high", 5.0, published=True)
    low, high = time_to_targets(
        "lstm-a2c", 0, (reachable, unreachable), every_env_steps=1280, trials=50, overrides=SMALL
    )
    assert low.reached and low.env_steps == low.curve[0][0] and len(low.curve) == 5
    # Training went on to the budget for the unreached target; both saw the same checks.
    assert not high.reached and high.env_steps >= 6400 and high.curve == low.curve
    assert all(se > 0 for _, _, _, se in high.curve)
