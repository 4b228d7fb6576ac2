"""Exact Bayes-optimal Bernoulli bandit: hand-computed values, brute force, planner, limit."""

from __future__ import annotations

from fractions import Fraction
from functools import cache

import pytest
import torch

from baselines.classical.bayes_optimal import (
    BAYES_OPTIMAL_LIMIT,
    BayesOptimalPlanner,
    bayes_optimal_value,
    canonical_state_count,
    check_tractable,
)


@cache
def brute_force(state: tuple[tuple[int, int], ...], left: int) -> Fraction:
    """Expectimax over ordered per-arm (successes, failures), in exact rationals."""
    return max(brute_force_q(state, left), default=Fraction(0))


def brute_force_q(state: tuple[tuple[int, int], ...], left: int) -> list[Fraction]:
    if left == 0:
        return []
    values = []
    for arm, (s, f) in enumerate(state):
        p = Fraction(1 + s, 2 + s + f)
        win = state[:arm] + ((s + 1, f),) + state[arm + 1 :]
        lose = state[:arm] + ((s, f + 1),) + state[arm + 1 :]
        values.append(p * (1 + brute_force(win, left - 1)) + (1 - p) * brute_force(lose, left - 1))
    return values


def fresh(arms: int) -> tuple[tuple[int, int], ...]:
    return ((0, 0),) * arms


@pytest.mark.parametrize("pulls", [1, 2, 5, 9])
def test_one_arm_earns_half_per_pull(pulls):
    assert bayes_optimal_value(1, pulls) == pytest.approx(0.5 * pulls)


@pytest.mark.parametrize("arms", [1, 2, 3, 7])
def test_one_pull_earns_one_half(arms):
    assert bayes_optimal_value(arms, 1) == pytest.approx(0.5)


@pytest.mark.parametrize("arms", [2, 3, 6])
def test_two_pulls_stay_on_a_win_and_switch_after_a_loss(arms):
    # 1/2 now; after a success the same arm pays 2/3, after a failure a fresh arm pays 1/2.
    assert bayes_optimal_value(arms, 2) == pytest.approx(0.5 + 0.5 * 2 / 3 + 0.5 * 0.5)
    assert bayes_optimal_value(arms, 2) == pytest.approx(13 / 12)


@pytest.mark.parametrize("arms,pulls", [(2, 3), (2, 6), (3, 5), (4, 4)])
def test_matches_brute_force_enumeration(arms, pulls):
    exact = brute_force(fresh(arms), pulls)
    assert bayes_optimal_value(arms, pulls) == pytest.approx(float(exact), abs=1e-12)


def test_five_arms_ten_pulls():
    assert 6.6 <= bayes_optimal_value(5, 10) <= 6.7


def test_limit_raises_with_a_message_naming_it():
    with pytest.raises(ValueError) as info:
        check_tractable(50, 500)
    message = str(info.value)
    assert "BAYES_OPTIMAL_LIMIT" in message and f"{BAYES_OPTIMAL_LIMIT:,}" in message
    assert "50 arms x 500 pulls" in message and "\n" not in message
    with pytest.raises(ValueError, match="BAYES_OPTIMAL_LIMIT"):
        bayes_optimal_value(2, 150)
    with pytest.raises(ValueError, match="BAYES_OPTIMAL_LIMIT"):
        BayesOptimalPlanner(4, 40)
    check_tractable(5, 10)
    check_tractable(2, 100)


def test_state_count_matches_the_enumeration():
    planner = BayesOptimalPlanner(3, 7)
    assert planner.num_states == canonical_state_count(3, 6)
    assert canonical_state_count(1, 4) == 15
    assert canonical_state_count(2, 1) == 1 + 2


def all_states(arms: int, pulls: int):
    """Every ordered state with fewer than ``pulls`` pulls in total."""
    states = {fresh(arms)}
    frontier = set(states)
    for _ in range(pulls - 1):
        frontier = {
            state[:arm] + (child,) + state[arm + 1 :]
            for state in frontier
            for arm, (s, f) in enumerate(state)
            for child in ((s + 1, f), (s, f + 1))
        }
        states |= frontier
    return sorted(states)


def test_planner_q_values_and_actions_match_brute_force():
    arms, pulls = 3, 5
    planner = BayesOptimalPlanner(arms, pulls)
    assert planner.value == pytest.approx(float(brute_force(fresh(arms), pulls)))
    states = all_states(arms, pulls)
    counts = torch.tensor(states)
    q = planner.q_values(counts[..., 0], counts[..., 1])
    actions = planner.action(counts[..., 0], counts[..., 1])
    for row, state in enumerate(states):
        left = pulls - sum(s + f for s, f in state)
        expected = [float(v) for v in brute_force_q(state, left)]
        assert q[row].tolist() == pytest.approx(expected, abs=1e-12)
        best = max(expected)
        assert actions[row].item() == min(i for i, v in enumerate(expected) if v > best - 1e-12)


def test_ties_go_to_the_lowest_arm():
    planner = BayesOptimalPlanner(4, 10)
    zeros = torch.zeros(3, 4, dtype=torch.long)
    successes = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 0], [2, 0, 3, 3]])
    failures = torch.tensor([[0, 0, 0, 0], [1, 0, 0, 1], [0, 0, 0, 0]])
    assert planner.action(successes, failures).tolist() == [0, 1, 2]
    assert planner.action(zeros, zeros).tolist() == [0, 0, 0]


def test_planner_rejects_bad_batches():
    planner = BayesOptimalPlanner(2, 3)
    with pytest.raises(ValueError, match="fewer than 3"):
        planner.action(torch.tensor([[2, 1]]), torch.tensor([[0, 0]]))
    with pytest.raises(ValueError, match="arms"):
        planner.action(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))


def test_planner_simulation_earns_the_optimal_value():
    arms, pulls, trials = 5, 10, 4000
    planner = BayesOptimalPlanner(arms, pulls)
    generator = torch.Generator().manual_seed(0)
    probs = torch.rand(trials, arms, generator=generator, dtype=torch.float64)
    successes = torch.zeros(trials, arms, dtype=torch.long)
    failures = torch.zeros_like(successes)
    rows = torch.arange(trials)
    for _ in range(pulls):
        arm = planner.action(successes, failures)
        win = torch.rand(trials, generator=generator, dtype=torch.float64) < probs[rows, arm]
        successes[rows, arm] += win.long()
        failures[rows, arm] += (~win).long()
    total = successes.sum(dim=1).double()
    stderr = total.std().item() / trials**0.5
    assert abs(total.mean().item() - planner.value) < 4 * stderr


@pytest.mark.slow
def test_two_arms_hundred_pulls():
    value = bayes_optimal_value(2, 100)
    assert 64.0 < value < 66.0
