"""Fast learning checks in the default test run: one short training run per learned algorithm.

The setting is the dependent two-armed bandit of difficulty ``easy`` with 10 pulls per trial
(p1 in {0.1, 0.9}, p2 = 1 - p1): every memoryless policy, random included, scores pulls / 2 = 5.0
and the oracle 9.0, while one pull tells a policy with memory which arm is likely the good one.
Each run goes through the real run path (:func:`tests.run_support.short_run`: Trainer, DataModule,
held-out evaluation) with a fixed seed.

The threshold sits between measured runs of the intact code and of broken code. Intact: LSTM-A2C
scored 7.91-8.10 (normalised 0.73-0.77, seeds 0-3), RL² 7.90-8.02 (0.72-0.75, seeds 0-3),
LSTM-A3C 0.73-0.77 (seeds 0-2, its dependent-bandit settings with lr 0.01, 200k env steps; at
its earlier settings one run of 16 stayed at 0.04); each rose from about 0.5
on the first pull to about 0.8 on the last five, and A2C scored 5.00 with a flat curve. With the
policy gradient's sign flipped (seed 0) every learned score fell to about 2; with the trial
engine's reset mask zeroed LSTM-A2C scored 0.33-0.54 normalised (seeds 0-2), RL² about 0 and
LSTM-A3C 0.23-0.38 (seeds 0-1).
"""

from __future__ import annotations

import math

import pytest
from run_support import short_run

from benchmark.run.evaluation import EvalResult

SETTING = ["task.difficulty=easy", "task.pulls=10"]
MIN_NORMALISED = 0.6
"""Normalised score (random 0, oracle 1) a learned policy must exceed."""


def trained(algo: str, overrides: list[str], seed: int = 0) -> EvalResult:
    """The held-out evaluation of a short run of ``algo`` on the setting."""
    spec = [*SETTING, f"seed={seed}", *overrides]
    return short_run(algo, "dependent-bandit", spec).outcome.result


def rise(result: EvalResult) -> float:
    """Mean return of the last five pulls minus the first pull's (the adaptation curve's rise)."""
    curve = result.per_episode_returns
    return sum(curve[5:]) / len(curve[5:]) - curve[0]


def rise_noise(result: EvalResult) -> float:
    """An upper bound on the standard error of :func:`rise`: per trial it lies in [-1, 1], so
    its variance is at most 1."""
    return 1.0 / math.sqrt(result.trials)


def shortfalls(result: EvalResult) -> list[str]:
    """How ``result`` fails to beat random clearly and to adapt within the trial ([] if not)."""
    failed = []
    margin = result.mean_total_reward - result.random_reference
    if margin <= 4 * result.stderr:
        failed.append(f"mean - random = {margin:+.3f} <= 4 standard errors ({result.stderr:.3f})")
    if result.normalized_score <= MIN_NORMALISED:
        failed.append(f"normalised score {result.normalized_score:.3f} <= {MIN_NORMALISED}")
    if rise(result) <= 4 * rise_noise(result):
        failed.append(f"curve rises {rise(result):+.3f} <= {4 * rise_noise(result):.3f}")
    return failed


@pytest.fixture(scope="module")
def lstm_a2c() -> EvalResult:
    """LSTM-A2C after 200k env steps (its dependent-bandit settings with lr 0.01)."""
    return trained("lstm-a2c", ["algo.lr=0.01", "trainer.env_steps=200000", "eval.trials=2000"])


def test_lstm_a2c_learns_to_adapt(lstm_a2c):
    assert not shortfalls(lstm_a2c), (shortfalls(lstm_a2c), lstm_a2c.per_episode_returns)


def test_rl2_learns_to_adapt():
    result = trained("rl2", ["trainer.env_steps=200000", "eval.trials=2000"])
    assert not shortfalls(result), (shortfalls(result), result.per_episode_returns)


def test_lstm_a3c_learns_to_adapt():
    """LSTM-A3C's runs are not bit-reproducible (its workers interleave as the scheduler lets
    them), and a run can stay on the uniform plateau: a miss trains once more, on seed 1,
    before the test fails. Its dependent-bandit settings with lr 0.01, as LSTM-A2C's here."""
    overrides = ["algo.lr=0.01", "trainer.env_steps=200000", "eval.trials=2000"]
    result = trained("lstm-a3c", overrides)
    if shortfalls(result):
        result = trained("lstm-a3c", overrides, seed=1)
    assert not shortfalls(result), (shortfalls(result), result.per_episode_returns)


def test_a2c_stays_flat_where_lstm_a2c_rises(lstm_a2c):
    a2c = trained("a2c", ["trainer.env_steps=200000", "eval.trials=4000"])
    assert abs(rise(a2c)) < 4 * rise_noise(a2c), a2c.per_episode_returns
    assert abs(a2c.mean_total_reward - a2c.random_reference) < 4 * a2c.stderr
    assert rise(lstm_a2c) > 4 * rise_noise(lstm_a2c) + abs(rise(a2c)), lstm_a2c.per_episode_returns
