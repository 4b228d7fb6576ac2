"""The ``tabular-mdp`` family (RL² Table 2) and its classical strategies."""

from __future__ import annotations

import itertools
import math

import gymnasium as gym
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from baselines.classical.tabular import (
    EpsGreedyPlanner,
    PSRLPlanner,
    TabularEpsGreedyConfig,
    extended_value_iteration,
)
from baselines.strategies import get_strategy, register_strategy
from benchmark.run.evaluation import evaluate_policy, play_recorded
from tasks import ConfigError, TrialEngine, make_task, task_generator
from tasks.tabular_mdp import finite_horizon_q

STRATEGIES = {
    "random": {},
    "eps-greedy": {"eps": 0.1},
    "psrl": {},
    "opsrl": {"samples": 3},
    "ucrl2": {"scale": 0.1},
    "beb": {"scale": 0.01},
}


def test_shapes_dtypes_and_trial_length():
    family = make_task("tabular-mdp", states=4, actions=3, horizon=5, episodes=2)
    generator = task_generator(0, "train")
    tasks = family.sample(6, generator)
    assert tasks["transitions"].shape == (6, 4, 3, 4) and tasks["rewards"].shape == (6, 4, 3)
    assert tasks["q"].shape == (6, 5, 4, 3)
    torch.testing.assert_close(tasks["transitions"].sum(3), torch.ones(6, 4, 3))
    state = family.initial_state(tasks, generator)
    assert state["s"].dtype == torch.long and not state["s"].any() and not state["t"].any()
    obs = family.observe(tasks, state)
    assert obs.dtype == torch.float32 and obs.shape == (6, 4) and (obs[:, 0] == 1).all()
    state, reward, terminated = family.step(
        tasks, state, torch.tensor([0, 1, 2, 0, 1, 2]), generator
    )
    assert reward.dtype == torch.float32 and terminated.dtype == torch.bool
    assert ((state["s"] >= 0) & (state["s"] < 4)).all() and (state["t"] == 1).all()
    assert family.fixed_trial_steps == 10 and family.obs_dim == 4 and family.num_actions == 3


@pytest.mark.parametrize("key", ["states", "horizon", "episodes"])
def test_bad_parameters_are_one_line_config_errors(key):
    with pytest.raises(ConfigError, match=f"task.{key} must be an integer >= 1, got 0"):
        make_task("tabular-mdp", **{key: 0})


def test_the_engine_restarts_episodes_in_state_zero_with_the_time_step_cleared():
    family = make_task("tabular-mdp", horizon=3, episodes=2)
    engine = TrialEngine(family, 5, task_generator(0, "test"), auto_reset=False)
    view = engine.start()
    seen_t = []
    while not engine.all_done():
        seen_t.append(view.state["t"].clone())
        transition, view = engine.step(family.oracle_action(view.tasks, view.state))
        if bool(transition.episode_done.any()):
            assert transition.episode_done.all() and not view.state["s"].any()
    assert [int(t[0]) for t in seen_t] == [0, 1, 2, 0, 1, 2]


def _rollout(seed: int) -> torch.Tensor:
    family = make_task("tabular-mdp", horizon=4, episodes=3)
    policy = get_strategy("psrl").build(family)
    played = play_recorded(policy, family, 8, seed)
    return torch.cat([played.totals, played.tasks["rewards"].flatten()])


def test_seeding_is_deterministic_and_splits_differ():
    torch.testing.assert_close(_rollout(3), _rollout(3))
    assert not torch.allclose(_rollout(3), _rollout(4))
    family = make_task("tabular-mdp")
    tune = family.sample(4, task_generator(0, "tune"))["rewards"]
    assert not torch.allclose(tune, family.sample(4, task_generator(0, "test"))["rewards"])


def test_generator_statistics_match_the_protocol():
    family = make_task("tabular-mdp", states=10, actions=5)
    tasks = family.sample(4000, task_generator(1, "train"))
    rewards, transitions = tasks["rewards"], tasks["transitions"]
    assert rewards.mean().item() == pytest.approx(1.0, abs=0.01)
    assert rewards.std().item() == pytest.approx(1.0, abs=0.01)
    # Flat Dirichlet over 10 outcomes: mean 1/10, variance 9 / (100 * 11).
    assert transitions.mean().item() == pytest.approx(0.1, abs=1e-4)
    assert transitions.var().item() == pytest.approx(9 / 1100, rel=0.02)


def test_observed_rewards_and_next_states_follow_the_task():
    family = make_task("tabular-mdp", states=4, actions=2)
    generator = task_generator(2, "train")
    one = family.sample(1, generator)
    n = 40000
    tasks = {key: value.expand(n, *value.shape[1:]) for key, value in one.items()}
    state = family.initial_state(tasks, generator)
    action = torch.ones(n, dtype=torch.long)
    after, reward, _ = family.step(tasks, state, action, generator)
    noise = reward - one["rewards"][0, 0, 1]
    assert noise.mean().item() == pytest.approx(0.0, abs=0.02)
    assert noise.std().item() == pytest.approx(1.0, abs=0.02)
    frequencies = torch.bincount(after["s"], minlength=4).float() / n
    torch.testing.assert_close(frequencies, one["transitions"][0, 0, 1], atol=0.01, rtol=0)


def _naive_values(transitions, rewards, horizon, uniform):
    states, actions = len(rewards), len(rewards[0])

    def value(s, h):
        if h == horizon:
            return 0.0
        qs = [q(s, a, h) for a in range(actions)]
        return sum(qs) / actions if uniform else max(qs)

    def q(s, a, h):
        future = sum(transitions[s][a][t] * value(t, h + 1) for t in range(states))
        return rewards[s][a] + future

    return [[[q(s, a, h) for a in range(actions)] for s in range(states)] for h in range(horizon)]


@pytest.mark.parametrize("uniform", [False, True])
def test_value_iteration_matches_a_naive_recursion(uniform):
    family = make_task("tabular-mdp", states=3, actions=2, horizon=3)
    tasks = family.sample(2, task_generator(5, "train"))
    batched = finite_horizon_q(tasks["transitions"], tasks["rewards"], 3, uniform=uniform)
    for i in range(2):
        naive = _naive_values(
            tasks["transitions"][i].tolist(), tasks["rewards"][i].tolist(), 3, uniform
        )
        torch.testing.assert_close(batched[i], torch.tensor(naive), atol=1e-5, rtol=1e-5)


def test_reference_scores_are_the_expected_totals_of_random_and_oracle_play():
    family = make_task("tabular-mdp", horizon=5, episodes=4)
    for name, key in (("random", "random_reference"), ("oracle", "oracle_reference")):
        result = evaluate_policy(get_strategy(name).build(family), family, 1000, 7)
        assert abs(result.mean_total_reward - getattr(result, key)) < 4 * result.stderr


def test_the_oracle_beats_every_strategy_and_learners_beat_random():
    family = make_task("tabular-mdp", episodes=5)
    means = {}
    for name, params in STRATEGIES.items():
        result = evaluate_policy(get_strategy(name).build(family, params), family, 120, 11)
        assert result.mean_total_reward < result.oracle_reference + 3 * result.stderr, name
        means[name] = result.mean_total_reward
    assert all(means[name] > means["random"] * 1.1 for name in STRATEGIES if name != "random")


def test_extended_value_iteration_bounds():
    family = make_task("tabular-mdp", states=4, actions=2, horizon=3)
    tasks = family.sample(3, task_generator(0, "train"))
    p, r = tasks["transitions"], tasks["rewards"]
    plain = extended_value_iteration(p, r, torch.zeros_like(r), 3)
    torch.testing.assert_close(plain, finite_horizon_q(p, r, 3))
    optimistic = extended_value_iteration(p, r, torch.full_like(r, 2.0), 3)
    assert (optimistic >= plain - 1e-5).all()
    # All mass on the best next state: Q_h = R + max_s' V_{h+1}(s').
    best_next = optimistic[:, 1].max(2).values.max(1).values
    torch.testing.assert_close(optimistic[:, 0], r + best_next.view(3, 1, 1))


def test_posterior_counts_one_transition_per_continuing_step():
    family = make_task("tabular-mdp", horizon=4, episodes=3)
    policy = PSRLPlanner()
    engine = TrialEngine(family, 5, task_generator(0, "test"), auto_reset=False)
    view = engine.start()
    policy.begin(family, 5, torch.Generator().manual_seed(0))
    while not engine.all_done():
        _, view = engine.step(policy.act(view))
    # Every step but the last has been absorbed; steps that end an episode add no transition.
    assert (policy.counts.sum((1, 2, 3)) == 3 * 3).all()
    assert (policy.reward_count.sum((1, 2)) == 4 * 3 - 1).all()
    policy.act(view)  # the last view starts a new trial: the slot is cleared
    assert not policy.counts.any() and not policy.reward_count.any()


def test_one_strategy_name_serves_several_families():
    bandit, mdp = make_task("bernoulli-bandit"), make_task("tabular-mdp")
    eps = get_strategy("eps-greedy")
    assert type(eps.build(bandit, {"eps": 0.2})) is not type(eps.build(mdp, {"eps": 0.2}))
    assert set(eps.families) == {"bernoulli-bandit", "dependent-bandit", "tabular-mdp"}
    with pytest.raises(ConfigError, match="strategy 'psrl' does not support task 'bernoulli"):
        get_strategy("psrl").build(bandit)
    with pytest.raises(ValueError, match="registered twice"):
        register_strategy("psrl", families=("tabular-mdp",))(lambda family: None)


def test_gymnasium_face_passes_check_env_with_default_parameters():
    env = gym.make("metarl/TabularMDP-v0")
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (10,) and obs[0] == 1.0 and math.isclose(obs.sum(), 1.0)
    steps = sum(1 for _ in itertools.takewhile(lambda _: not env.step(0)[2], range(1000))) + 1
    assert steps == 100


def _non_greedy_share_per_episode(policy, episodes: int, slots: int = 3000) -> list[float]:
    family = make_task("tabular-mdp", horizon=3, episodes=episodes)
    engine = TrialEngine(family, slots, task_generator(0, "test"), auto_reset=False)
    view = engine.start()
    policy.begin(family, slots, torch.Generator().manual_seed(0))
    counts = torch.zeros(episodes)
    while not engine.all_done():
        action = policy.act(view)
        greedy = policy.greedy_action(view.obs.argmax(1))
        counts[int(view.episode_index[0])] += (action != greedy).float().mean() / 3
        _, view = engine.step(action)
    return counts.tolist()


@pytest.mark.parametrize("decay", [0.0, 1.0])
def test_eps_greedy_explores_eps_over_k_to_the_decay_in_episode_k(decay):
    policy = EpsGreedyPlanner(eps=0.9, decay=decay)
    shares = _non_greedy_share_per_episode(policy, episodes=3)
    # A uniform action misses the greedy one with probability 4/5.
    for k, share in enumerate(shares, 1):
        assert share == pytest.approx(0.9 / k**decay * 0.8, abs=0.02), k
    torch.testing.assert_close(policy.exploration(), torch.full((3000,), 0.9 / 3**decay))


def test_eps_greedy_decay_is_validated_and_defaults_to_constant():
    assert get_strategy("eps-greedy").config_for("tabular-mdp") is TabularEpsGreedyConfig
    assert TabularEpsGreedyConfig().decay == 0.0
    assert get_strategy("eps-greedy").build(make_task("tabular-mdp"), {"eps": 0.3}).decay == 0.0
    with pytest.raises(ConfigError, match="strategy.decay must be >= 0, got -1"):
        TabularEpsGreedyConfig(eps=0.1, decay=-1)
