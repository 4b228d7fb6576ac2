"""Trial semantics: phi, episode counting, resets at trial boundaries only, task streams."""

from __future__ import annotations

import torch

from baselines.networks import RecurrentActorCritic
from tasks import TrialEngine, make_task, phi_dim, task_generator


def play(engine, actions):
    views, transitions = [engine.view], []
    for action in actions:
        transition, view = engine.step(torch.tensor(action))
        views.append(view)
        transitions.append(transition)
    return views, transitions


def test_phi_carries_the_previous_action_reward_and_done():
    family = make_task("bernoulli-bandit", arms=3, pulls=4)
    engine = TrialEngine(family, 2, task_generator(0, "train"))
    engine.start()
    views, transitions = play(engine, [[0, 2], [1, 1], [2, 0]])
    assert torch.equal(views[0].phi, torch.zeros(2, phi_dim(family)))  # trial start: nothing yet
    for t in range(1, 3):
        phi = views[t].phi
        expected_action = torch.nn.functional.one_hot(torch.tensor([[0, 2], [1, 1]][t - 1]), 3)
        assert torch.equal(phi[:, 1:4], expected_action.float())
        assert torch.equal(phi[:, 4], transitions[t - 1].reward)
        assert torch.equal(phi[:, 5], torch.ones(2))  # every pull ends an episode


def test_episodes_are_counted_and_trials_restart_with_new_tasks():
    family = make_task("bernoulli-bandit", arms=3, pulls=4)
    engine = TrialEngine(family, 5, task_generator(0, "train"))
    engine.start()
    first_tasks = engine.tasks["p"].clone()
    views, transitions = play(engine, [[0] * 5] * 5)
    assert [int(t.episode_index[0]) for t in transitions] == [0, 1, 2, 3, 0]
    assert [bool(t.trial_done[0]) for t in transitions] == [False, False, False, True, False]
    assert [bool(v.reset[0]) for v in views] == [True, False, False, False, True, False]
    assert not torch.equal(engine.tasks["p"], first_tasks)  # a new MDP after the boundary
    assert torch.equal(views[4].phi, torch.zeros(5, phi_dim(family)))  # no carry-over into phi


def test_hidden_state_carries_within_a_trial_and_resets_between_trials():
    torch.manual_seed(0)
    family = make_task("bernoulli-bandit", arms=2, pulls=3)
    net = RecurrentActorCritic(phi_dim(family), 2, 8, "gru")
    engine = TrialEngine(family, 1, task_generator(0, "train"))
    view = engine.start()
    state = net.initial_state(1, "cpu")
    phis, states = [], []
    for _ in range(4):  # steps 0-2 are trial 1 (each pull is an episode), step 3 starts trial 2
        phis.append(view.phi)
        _, _, state = net(view.phi[None], state, view.reset[None])
        states.append(state[0])
        _, view = engine.step(torch.tensor([0]))

    def from_zero(phi):
        return net(phi[None], net.initial_state(1, "cpu"), torch.tensor([[True]]))[2][0]

    assert bool(phis[1][0, -1]) and bool(phis[2][0, -1])  # episode ends inside the trial (d = 1)
    assert not torch.allclose(states[1], from_zero(phis[1]))  # ...and yet no reset there
    assert not torch.allclose(states[2], from_zero(phis[2]))
    torch.testing.assert_close(states[3], from_zero(phis[3]))  # reset at the trial boundary
    torch.testing.assert_close(states[3], states[0])  # identical to the first trial's start


def test_train_tune_and_test_streams_differ_and_are_deterministic():
    family = make_task("bernoulli-bandit", arms=5, pulls=10)
    draws = {s: family.sample(4, task_generator(3, s))["p"] for s in ("train", "tune", "test")}
    assert not torch.equal(draws["train"], draws["test"])
    assert not torch.equal(draws["tune"], draws["test"])
    again = family.sample(4, task_generator(3, "test"))["p"]
    assert torch.equal(again, draws["test"])


def test_dependent_bandit_difficulties_draw_their_support():
    easy = make_task("dependent-bandit", difficulty="easy", pulls=5)
    p = easy.sample(1000, task_generator(0, "train"))["p"]
    assert {round(x, 4) for x in p[:, 0].tolist()} == {0.1, 0.9}
    torch.testing.assert_close(p.sum(1), torch.ones(1000))


def test_the_view_says_when_no_trial_can_start_without_reading_reset():
    """Between the boundaries of fixed-length trials the view vouches that no slot resets (so a
    recurrent step skips its mask); where trial lengths vary it never does."""
    family = make_task("bernoulli-bandit", arms=2, pulls=3)
    bandit = TrialEngine(family, 4, task_generator(0, "train"))
    bandit.start()
    views, _ = play(bandit, [[0, 1, 0, 1]] * 7)
    assert [v.no_trial_starts for v in views] == [False, True, True] * 2 + [False, True]
    for view in views:
        assert view.no_trial_starts == (not bool(view.reset.any()))
        assert (view.reset_if_any is None) == view.no_trial_starts
    maze = TrialEngine(make_task("maze"), 4, task_generator(0, "train"))
    maze.start()
    views, _ = play(maze, [[0, 1, 2, 3]] * 5)
    assert not any(view.no_trial_starts for view in views)
    assert all(view.reset_if_any is view.reset for view in views)
