"""The ``two-step`` family (Daw et al. 2011, as simplified by Wang et al. 2016)."""

from __future__ import annotations

import itertools

import gymnasium as gym
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from baselines.strategies import get_strategy
from benchmark.run.evaluation import evaluate_policy, result_metrics
from tasks import ConfigError, TrialEngine, make_task, task_generator
from tasks.two_step import STAY_CELLS, common_transitions, stay_counts, stay_probabilities

CELL_ROWS, CELL_COLUMNS = ("common", "rare"), ("rewarded", "unrewarded")


def test_an_episode_is_a_stage_one_choice_then_a_rewarded_stage_two_step():
    family = make_task("two-step", episodes=3)
    generator = task_generator(0, "train")
    tasks = family.sample(4, generator)
    state = family.initial_state(tasks, generator)
    obs = family.observe(tasks, state)
    assert obs.dtype == torch.float32 and obs.shape == (4, 3) and (obs[:, 0] == 1).all()
    state, reward, terminated = family.step(tasks, state, torch.tensor([0, 1, 0, 1]), generator)
    assert not reward.any() and not terminated.any()
    assert ((state["stage"] == 1) | (state["stage"] == 2)).all()
    assert (family.observe(tasks, state).sum(1) == 1).all()
    _, reward, terminated = family.step(tasks, state, torch.tensor([1, 1, 0, 0]), generator)
    assert terminated.all() and ((reward == 0) | (reward == 1)).all()
    assert family.fixed_trial_steps == 6 and family.max_episode_steps == 2


def _first_stage_outcomes(family, action: int, n: int, seed: int):
    generator = task_generator(seed, "train")
    tasks = family.sample(n, generator)
    state = family.initial_state(tasks, generator)
    actions = torch.full((n,), action)
    after, _, _ = family.step(tasks, state, actions, generator)
    _, reward, _ = family.step(tasks, after, actions, generator)
    return tasks, after["stage"], reward


@pytest.mark.parametrize("action", [0, 1])
def test_transitions_and_rewards_follow_the_configured_probabilities(action):
    family = make_task("two-step", common_prob=0.8, high_prob=0.7, low_prob=0.2)
    n = 40000
    tasks, reached, reward = _first_stage_outcomes(family, action, n, seed=action)
    common = common_transitions(torch.full((n,), action), reached)
    assert common.float().mean().item() == pytest.approx(0.8, abs=0.01)
    at_rewarded = reached == tasks["high"] + 1
    assert reward[at_rewarded].mean().item() == pytest.approx(0.7, abs=0.015)
    assert reward[~at_rewarded].mean().item() == pytest.approx(0.2, abs=0.015)


def _high_over_a_trial(reversal_prob: float, n: int = 200, episodes: int = 40) -> torch.Tensor:
    family = make_task("two-step", reversal_prob=reversal_prob, episodes=episodes)
    engine = TrialEngine(family, n, task_generator(1, "train"), auto_reset=False)
    view = engine.start()
    history = []
    while not engine.all_done():
        if bool(view.obs[:, 0].all()):
            history.append(view.tasks["high"].clone())
        _, view = engine.step(torch.zeros(n, dtype=torch.long))
    return torch.stack(history, 1)


def test_reversals_swap_the_rewarded_state_between_episodes_at_the_configured_rate():
    assert (_high_over_a_trial(0.0).diff(dim=1) == 0).all()
    assert (_high_over_a_trial(1.0).diff(dim=1) != 0).all()
    flips = (_high_over_a_trial(0.25).diff(dim=1) != 0).float().mean().item()
    assert flips == pytest.approx(0.25, abs=0.02)
    start = _high_over_a_trial(0.0)[:, 0].float().mean().item()
    assert start == pytest.approx(0.5, abs=0.1)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"common_prob": 0.5}, r"task.common_prob must be in \(0.5, 1\], got 0.5"),
        ({"common_prob": 1.2}, r"task.common_prob must be in \(0.5, 1\], got 1.2"),
        ({"high_prob": 1.5}, r"task.high_prob must be in \[0, 1\], got 1.5"),
        ({"low_prob": -0.1}, r"task.low_prob must be in \[0, 1\], got -0.1"),
        ({"reversal_prob": 2}, r"task.reversal_prob must be in \[0, 1\], got 2"),
        ({"episodes": 0}, "task.episodes must be an integer >= 1, got 0"),
        ({"high_prob": 0.2, "low_prob": 0.3}, "task.high_prob must be >= task.low_prob"),
    ],
)
def test_bad_parameters_are_one_line_config_errors(params, message):
    with pytest.raises(ConfigError, match=message) as error:
        make_task("two-step", **params)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("params", [{}, {"common_prob": 0.9, "high_prob": 0.8, "low_prob": 0.3}])
def test_reference_scores_are_the_expected_totals_of_random_and_oracle_play(params):
    family = make_task("two-step", episodes=20, **params)
    for name, key in (("random", "random_reference"), ("oracle", "oracle_reference")):
        result = evaluate_policy(get_strategy(name).build(family), family, 2000, 7)
        assert abs(result.mean_total_reward - getattr(result, key)) < 4 * result.stderr, name
    common, high, low = family.config.common_prob, family.config.high_prob, family.config.low_prob
    assert result.oracle_reference == pytest.approx(20 * (common * high + (1 - common) * low))
    assert result.random_reference == pytest.approx(20 * (high + low) / 2)


def test_stay_probabilities_of_a_hand_made_sequence():
    actions = torch.tensor([[0, 0, 1, 1, 1, 0]])
    common = torch.tensor([[True, False, True, True, False, True]])
    rewarded = torch.tensor([[True, True, False, True, False, True]])
    # Pairs: (C,R) stay, (R,R) switch, (C,U) stay, (C,R) stay, (R,U) switch; last episode unused.
    expected = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    torch.testing.assert_close(stay_probabilities(actions, common, rewarded), expected)
    empty = stay_probabilities(actions[:, :2], common[:, :2], rewarded[:, :2])
    assert empty[0, 0] == 1.0 and empty[1].isnan().all() and empty[0, 1].isnan()


class _ScriptedPolicy:
    """Repeat-if-rewarded (model-free) or go-back-to-the-rewarded-state (model-based)."""

    def __init__(self, model_based: bool):
        self.model_based = model_based

    def begin(self, family, n: int, generator: torch.Generator):
        self.generator = generator
        self.last_action = torch.zeros(n, dtype=torch.long)
        self.reached = torch.ones(n, dtype=torch.long)

    def act(self, view) -> torch.Tensor:
        n = view.obs.shape[0]
        at_first = view.obs[:, 0] == 1
        self.reached = torch.where(at_first, self.reached, view.obs.argmax(1))
        won = view.prev_reward > 0
        if self.model_based:  # action whose common transition reaches the state believed good
            good_state = torch.where(won, self.reached, 3 - self.reached)
            action = good_state - 1
        else:
            action = torch.where(won, self.last_action, 1 - self.last_action)
        action = torch.where(view.reset, torch.randint(2, (n,), generator=self.generator), action)
        self.last_action = torch.where(at_first, action, self.last_action)
        return action


def _play_and_record(policy: _ScriptedPolicy, n: int = 300, episodes: int = 60, seed: int = 3):
    """Play like ``evaluate_policy(policy, family, n, seed)`` and record every episode."""
    family = make_task("two-step", episodes=episodes)
    engine = TrialEngine(family, n, task_generator(seed, "test"), auto_reset=False)
    view = engine.start()
    policy.begin(family, n, torch.Generator().manual_seed(seed))
    actions, reached, rewards = [], [], []
    while not engine.all_done():
        action = policy.act(view)
        if bool(view.obs[:, 0].all()):
            actions.append(action)
        else:
            reached.append(view.obs.argmax(1))
        transition, view = engine.step(action)
        if bool(transition.episode_done.all()):
            rewards.append(transition.reward > 0)
    actions, reached = torch.stack(actions, 1), torch.stack(reached, 1)
    return actions, common_transitions(actions, reached), torch.stack(rewards, 1)


def _main_effect_and_interaction(stay: torch.Tensor) -> tuple[float, float]:
    reward_effect = (stay[:, 0] - stay[:, 1]).mean().item()
    interaction = ((stay[0, 0] - stay[0, 1]) - (stay[1, 0] - stay[1, 1])).item()
    return reward_effect, interaction


def test_stay_probabilities_separate_model_free_from_model_based_play():
    stay_free = stay_probabilities(*_play_and_record(_ScriptedPolicy(model_based=False)))
    reward_effect, interaction = _main_effect_and_interaction(stay_free)
    torch.testing.assert_close(stay_free, torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    assert reward_effect == pytest.approx(1.0) and interaction == pytest.approx(0.0)

    stay_based = stay_probabilities(*_play_and_record(_ScriptedPolicy(model_based=True)))
    reward_effect, interaction = _main_effect_and_interaction(stay_based)
    torch.testing.assert_close(stay_based, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert reward_effect == pytest.approx(0.0) and interaction == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("model_based", "table"),
    [(True, [[1.0, 0.0], [0.0, 1.0]]), (False, [[1.0, 0.0], [1.0, 0.0]])],
)
def test_the_evaluation_records_the_stay_table_of_the_play(model_based, table):
    family = make_task("two-step", episodes=60)
    result = evaluate_policy(_ScriptedPolicy(model_based), family, 300, seed=3)
    behaviour = result.behaviour
    stay = [[behaviour[f"stay_{row}_{col}"] for col in CELL_COLUMNS] for row in CELL_ROWS]
    assert stay == table
    # The same episodes recorded by hand give the same counts, cell by cell.
    stays, pairs = stay_counts(*_play_and_record(_ScriptedPolicy(model_based)))
    for (i, row), (j, col) in itertools.product(enumerate(CELL_ROWS), enumerate(CELL_COLUMNS)):
        assert behaviour[f"pairs_{row}_{col}"] == pairs[i, j].item() > 0
        assert behaviour[f"stay_{row}_{col}"] == (stays[i, j] / pairs[i, j]).item()
    assert sum(behaviour[f"pairs_{cell}"] for cell in STAY_CELLS) == 300 * 59
    metrics = result_metrics(result, "heldout")
    assert metrics["heldout/behaviour/stay_rare_rewarded"] == table[1][0]
    assert metrics["heldout/behaviour/pairs_common_rewarded"] == pairs[0, 0].item()


def test_gymnasium_face_passes_check_env_and_a_gym_episode_is_one_trial():
    env = gym.make("metarl/TwoStep-v0", episodes=4)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [1.0, 0.0, 0.0]
    steps, terminated = 0, False
    while not terminated:
        obs, _, terminated, _, info = env.step(0)
        steps += 1
        assert info["episode_done"] == (steps % 2 == 0)
    assert steps == 8
