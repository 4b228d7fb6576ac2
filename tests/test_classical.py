"""Classical bandit strategies: hand-checkable choices, samplers, determinism, tuning, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch

from baselines.classical.bandits import (
    EpsGreedyPolicy,
    GittinsPolicy,
    OptimisticThompsonPolicy,
    ThompsonPolicy,
    UCB1Policy,
)
from baselines.classical.sampling import sample_beta, sample_gamma
from baselines.strategies import get_strategy, strategy_names
from benchmark.cli import main
from benchmark.run import tuning
from benchmark.run.evaluation import evaluate_policy
from benchmark.run.policies import evaluate_reference
from tasks import ConfigError, StepView, TrialEngine, make_task, task_generator

CLASSICAL = ["random", "greedy", "eps-greedy", "ucb1", "thompson", "ots", "gittins", "oracle"]


def view(prev_action, prev_reward, reset) -> StepView:
    """A StepView carrying only what the counting policies read."""
    prev_action = torch.as_tensor(prev_action)
    n = prev_action.shape[0]
    return StepView(
        phi=torch.zeros(n, 1),
        obs=torch.zeros(n, 1),
        prev_action=prev_action,
        prev_reward=torch.as_tensor(prev_reward, dtype=torch.float32),
        prev_done=torch.ones(n, dtype=torch.bool),
        reset=torch.as_tensor(reset),
        episode_index=torch.zeros(n, dtype=torch.long),
        active=torch.ones(n, dtype=torch.bool),
        tasks={},
        state={},
    )


def started(policy, arms: int, n: int, seed: int = 0):
    """``policy`` after ``begin`` and the first (reset) step of n trials of ``arms`` arms."""
    generator = torch.Generator().manual_seed(seed)
    policy.begin(make_task("bernoulli-bandit", arms=arms, pulls=10), n, generator)
    policy.act(view([-1] * n, [0.0] * n, [True] * n))
    return policy


def play(policy, history: list[tuple[int, float]], n: int):
    """Feed the same (arm, reward) history to all n slots; return the next actions."""
    action = None
    for arm, reward in history:
        action = policy.act(view([arm] * n, [reward] * n, [False] * n))
    return action


# Counts --------------------------------------------------------------------------------------


def test_counts_follow_history_and_clear_on_reset():
    policy = started(EpsGreedyPolicy(0.0), arms=3, n=2)
    play(policy, [(0, 1.0), (2, 0.0), (0, 0.0)], n=2)
    assert policy.successes.tolist() == [[1, 0, 0]] * 2
    assert policy.failures.tolist() == [[1, 0, 1]] * 2
    # Slot 1 starts a new trial: its counts are cleared (the last pull belonged to the old trial).
    policy.act(view([1, 1], [1.0, 1.0], [False, True]))
    assert policy.successes.tolist() == [[1, 1, 0], [0, 0, 0]]
    assert policy.failures.tolist() == [[1, 0, 1], [0, 0, 0]]


def test_counts_reset_at_trial_boundaries_of_the_engine():
    family = make_task("bernoulli-bandit", arms=4, pulls=3)
    generator = task_generator(0, "train")
    engine = TrialEngine(family, 8, generator, auto_reset=True)
    policy = EpsGreedyPolicy(0.0)
    policy.begin(family, 8, torch.Generator().manual_seed(0))
    current = engine.start()
    pulls = []
    for _ in range(7):
        action = policy.act(current)
        pulls.append((policy.successes + policy.failures).sum(1))
        _, current = engine.step(action)
    # Pulls seen before acting at steps 0..6: 0, 1, 2, then a new trial: 0, 1, 2, 0.
    expected = [0, 1, 2, 0, 1, 2, 0]
    assert [int(p[0]) for p in pulls] == expected
    assert all(bool((p == p[0]).all()) for p in pulls)


# Greedy and eps-greedy ------------------------------------------------------------------------


def test_greedy_after_a_fixed_history():
    policy = started(EpsGreedyPolicy(0.0), arms=3, n=1000)
    # Arm 0: 1 success -> 2/3; arm 1: 1 failure -> 1/3; arm 2 unpulled -> 1/2.
    action = play(policy, [(0, 1.0), (1, 0.0)], n=1000)
    assert bool((action == 0).all())
    torch.testing.assert_close(policy.mean_estimate()[0], torch.tensor([2 / 3, 1 / 3, 1 / 2]))


def test_greedy_breaks_ties_at_random_among_the_best_arms():
    policy = started(EpsGreedyPolicy(0.0), arms=3, n=4000)
    # Arm 0 failed once (1/3); arms 1 and 2 are unpulled and tie at 1/2.
    action = play(policy, [(0, 0.0)], n=4000)
    assert not bool((action == 0).any())
    share = (action == 1).float().mean().item()
    assert 0.45 < share < 0.55


def test_eps_greedy_explores_with_probability_eps():
    policy = started(EpsGreedyPolicy(0.3), arms=4, n=20000)
    action = play(policy, [(0, 1.0), (0, 1.0)], n=20000)
    # Greedy arm 0 (3/4) unless exploring; an exploring pull is uniform over the 4 arms.
    counts = torch.bincount(action, minlength=4).float() / 20000
    torch.testing.assert_close(
        counts, torch.tensor([0.7 + 0.3 / 4] + [0.3 / 4] * 3), atol=0.015, rtol=0
    )


# UCB1 -----------------------------------------------------------------------------------------


def test_ucb1_index_formula():
    policy = started(UCB1Policy(c=0.5), arms=2, n=1)
    play(policy, [(0, 1.0), (1, 0.0), (1, 0.0)], n=1)
    t = 3
    expected = [
        2 / 3 + 0.5 * math.sqrt(2 * math.log(t) / 3),
        1 / 4 + 0.5 * math.sqrt(2 * math.log(t) / 4),
    ]
    torch.testing.assert_close(policy.indices()[0], torch.tensor(expected))


def test_ucb1_bonus_prefers_the_less_pulled_of_equal_means():
    # Arm 0: 3 successes in 6 pulls, mean 4/8 = 1/2; arm 1 unpulled, mean 1/2, larger bonus.
    history = [(0, 1.0), (0, 0.0)] * 3
    explorer = started(UCB1Policy(c=0.1), arms=2, n=500)
    assert bool((play(explorer, history, n=500) == 1).all())
    greedy = started(UCB1Policy(c=0.0), arms=2, n=500)
    share = (play(greedy, history, n=500) == 1).float().mean().item()
    assert 0.4 < share < 0.6  # c = 0 is greedy: a tie, broken at random


# Samplers and posterior sampling ---------------------------------------------------------------


def test_gamma_and_beta_samplers_match_their_moments_and_are_seeded():
    g = torch.Generator().manual_seed(1)
    x = sample_gamma(torch.full((200_000,), 3.0), g)
    assert bool((x > 0).all())
    assert abs(x.mean().item() - 3.0) < 0.02 and abs(x.var().item() - 3.0) < 0.06
    a, b = torch.full((200_000,), 2.0), torch.full((200_000,), 5.0)
    y = sample_beta(a, b, torch.Generator().manual_seed(2))
    assert abs(y.mean().item() - 2 / 7) < 0.003
    assert abs(y.var().item() - 10 / (49 * 8)) < 0.001
    again = sample_beta(a, b, torch.Generator().manual_seed(2))
    assert torch.equal(y, again)


def test_thompson_picks_arms_with_their_posterior_probability():
    policy = started(ThompsonPolicy(), arms=2, n=20000)
    # Arm 0 ~ Beta(2, 1), arm 1 ~ Beta(1, 1): P(arm 0 draw is larger) = E[Beta(2, 1)] = 2/3.
    action = play(policy, [(0, 1.0)], n=20000)
    assert abs((action == 0).float().mean().item() - 2 / 3) < 0.015


def ots_share_of_unpulled_arm(samples: int, variant: str) -> float:
    # Arm 0: 3 successes, 1 failure: Beta(4, 2), mean 2/3, mode 3/4. Arm 1 unpulled: uniform.
    policy = started(OptimisticThompsonPolicy(samples, variant), arms=2, n=10000)
    action = play(policy, [(0, 1.0), (0, 1.0), (0, 1.0), (0, 0.0)], n=10000)
    return (action == 1).float().mean().item()


def test_ots_variants():
    # One sample is Thompson sampling: P(uniform > Beta(4, 2)) = 1 - 2/3.
    assert abs(ots_share_of_unpulled_arm(1, "hpd") - 1 / 3) < 0.02
    assert abs(ots_share_of_unpulled_arm(1, "max") - 1 / 3) < 0.02
    # hpd keeps the draw nearest the mode 3/4 (the unpulled arm adds nothing to the density),
    # so the unpulled arm wins about P(uniform > 3/4); max makes both arms optimistic, and the
    # max of 20 uniforms beats the max of 20 Beta(4, 2) draws more often than not.
    assert 0.23 < ots_share_of_unpulled_arm(20, "hpd") < 0.29
    assert ots_share_of_unpulled_arm(20, "max") > 0.5


# Gittins and Bayes-optimal -----------------------------------------------------------------------


def test_gittins_policy_prefers_the_more_uncertain_of_equal_means():
    from baselines.classical.gittins import gittins_table

    table = torch.as_tensor(gittins_table(0.9, max_pulls=10), dtype=torch.float64)
    # Beta(1, 1) and Beta(2, 2) have the same mean; the index of the less known arm is larger.
    assert table[0, 0] > table[1, 1]
    policy = started(GittinsPolicy(table), arms=2, n=200)
    assert bool((play(policy, [(0, 1.0), (0, 0.0)], n=200) == 1).all())


def test_bayes_optimal_last_pull_is_greedy_and_evaluation_matches_exact_value():
    from baselines.classical.bayes_optimal import bayes_optimal_value

    family = make_task("bernoulli-bandit", arms=2, pulls=2)
    policy = get_strategy("bayes-optimal").build(family)
    result = evaluate_policy(policy, family, 20000, seed=0)
    exact = bayes_optimal_value(2, 2)
    # Two arms, two pulls: 1/2 + (1/2 * 2/3 + 1/2 * 1/2) = 13/12.
    assert exact == pytest.approx(13 / 12)
    assert abs(result.mean_total_reward - exact) < 3 * result.stderr


def test_bayes_optimal_refuses_beyond_its_limit(capsys):
    code = main(["evaluate", "bayes-optimal", "bernoulli-bandit", "task.arms=50", "task.pulls=500"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "bayes-optimal" in err and "limit" in err.lower()


# Every strategy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("family_name", ["bernoulli-bandit", "dependent-bandit"])
@pytest.mark.parametrize("name", CLASSICAL)
def test_every_strategy_is_deterministic_and_beats_nothing_less_than_random(name, family_name):
    family = make_task(family_name, pulls=20)
    params = {"gittins": {"discount": 0.9}}.get(name, {})  # a short index table: fast when cold
    first = evaluate_policy(get_strategy(name).build(family, params), family, 200, seed=3)
    again = evaluate_policy(get_strategy(name).build(family, params), family, 200, seed=3)
    other = evaluate_policy(get_strategy(name).build(family, params), family, 200, seed=4)
    assert first.per_episode_returns == again.per_episode_returns
    assert first.per_episode_returns != other.per_episode_returns
    if name != "random":  # every informed strategy beats uniform play on 200 trials
        assert first.mean_total_reward > first.random_reference


def test_every_design_strategy_is_registered():
    assert set(CLASSICAL) | {"bayes-optimal"} <= set(strategy_names())


# Tuning ----------------------------------------------------------------------------------------


def test_tuning_uses_the_tune_stream_and_evaluation_the_test_stream(monkeypatch):
    splits = []
    real = tuning.evaluate_policy

    def spy(policy, family, trials, seed, device="cpu", split="test"):
        splits.append(split)
        return real(policy, family, trials, seed, device=device, split=split)

    monkeypatch.setattr(tuning, "evaluate_policy", spy)
    monkeypatch.setattr("benchmark.run.policies.evaluate_policy", spy)
    payload = evaluate_reference("ucb1", "bernoulli-bandit", ["task.pulls=10"], 50, seed=7)
    assert splits == ["tune"] * 11 + ["test"]
    assert payload["tuned"] == {"c": payload["params"]["c"]}
    # The two streams of one seed hold different tasks.
    family = make_task("bernoulli-bandit", arms=5, pulls=10)
    tune_tasks = family.sample(50, task_generator(7, "tune"))["p"]
    test_tasks = family.sample(50, task_generator(7, "test"))["p"]
    assert not torch.allclose(tune_tasks, test_tasks)


def test_tuning_picks_the_best_grid_value():
    family = make_task("bernoulli-bandit", arms=5, pulls=30)
    result = tuning.tune_strategy("eps-greedy", family, 200, seed=0)
    assert result.split == "tune" and len(result.scores) == 11
    grid = tuning.grid_of("eps-greedy", "bernoulli-bandit")
    assert result.param == grid.param and len(grid.values) == 11
    assert result.value == max(grid.values, key=lambda v: result.scores[str(v)])
    assert result.scores["1.0"] < result.scores[str(result.value)]  # uniform play is never best


def test_every_grid_sits_on_its_config_and_each_value_is_valid():
    from baselines.strategies import STRATEGIES, config_grid

    grids = set()
    for strategy in STRATEGIES.values():
        for family, variant in strategy.variants.items():
            grid = config_grid(variant.config)
            if grid is None:
                continue
            grids.add((strategy.name, variant.config))
            assert grid.values and len(set(grid.values)) == len(grid.values), strategy.name
            for value in grid.values:
                variant.config(**{grid.param: value})  # within the config's own range checks
            assert strategy.grid_for(family) == grid
    assert len(grids) == 8  # eps-greedy (bandits, MDPs), ucb1, ots, gittins, opsrl, ucrl2, beb


def test_evaluate_tunes_on_the_bandit_families_only():
    assert tuning.tuned_param("eps-greedy", family="dependent-bandit") == "eps"
    assert tuning.grid_of("eps-greedy", "tabular-mdp") is not None
    assert tuning.tuned_param("eps-greedy", family="tabular-mdp") is None
    assert tuning.tuned_param("ucb1", {"c"}) is None and tuning.grid_of("rl2", "two-step") is None


def test_explicit_hyperparameter_is_not_tuned(capsys):
    code = main(
        [
            "evaluate",
            "ucb1",
            "bernoulli-bandit",
            "task.pulls=10",
            "strategy.c=0.3",
            "--trials",
            "20",
            "--json",
        ]
    )
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and payload["tuned"] == {} and payload["params"]["c"] == 0.3


def test_evaluate_reports_the_tuned_value(capsys):
    argv = ["evaluate", "eps-greedy", "bernoulli-bandit", "task.pulls=10", "--trials", "50"]
    code = main([*argv, "--json", "--seed", "1"])
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and set(payload["tuned"]) == {"eps"}
    assert payload["tuned"]["eps"] in tuning.grid_of("eps-greedy", "bernoulli-bandit").values


# Bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["evaluate", "ucb2", "bernoulli-bandit"], "valid strategies: bayes-optimal,"),
        (["evaluate", "thompson-sampling", "bernoulli-bandit"], "valid strategies:"),
        (["evaluate", "ucb1", "bernoulli-bandit", "--trials", "0"], "--trials must be >= 1, got 0"),
        (["evaluate", "ucb1", "bernoulli-bandit", "--tune-trials", "0"], "--tune-trials must be"),
        (["evaluate", "eps-greedy", "bernoulli-bandit", "strategy.eps=1.5"], "strategy.eps"),
        (["evaluate", "ots", "bernoulli-bandit", "strategy.variant=min"], "hpd, max"),
        (["evaluate", "ucb1", "bernoulli-bandit", "strategy.k=1"], "unknown key 'strategy.k'"),
    ],
)
def test_bad_evaluate_input_is_one_line_and_exit_2(argv, needle, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and needle in err


def test_strategy_config_errors_are_config_errors():
    family = make_task("bernoulli-bandit", arms=50, pulls=500)
    with pytest.raises(ConfigError, match="(?i)limit"):
        get_strategy("bayes-optimal").build(family)
