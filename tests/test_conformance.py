"""Conformance of every registered family to the TaskFamily contract (bsuite-style, whole registry).

Every case is parametrised over :data:`tasks.TASKS`, so a family is covered as soon as it is
registered. Families run with the short settings of ``SMALL_PARAMS`` in ``test_registry_gym.py``
(add one line there for a new family whose defaults are slow).

The optional parts of the contract are typed class attributes of :class:`tasks.base.TaskFamily`
(``finite_tasks``, ``evolving_task_keys``, ``has_oracle``) and its ``task_keys`` method.
"""

from __future__ import annotations

import math

import gymnasium as gym
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from test_registry_gym import SMALL_PARAMS

from tasks import TASKS, MetaRLObservation, TrialEngine, make_task, phi_dim, task_generator

FAMILIES = sorted(TASKS)
BATCH = 6


def _two_trials_bound(family) -> int:
    """Steps within which two trials of every slot have certainly ended."""
    return 2 * family.episodes_per_trial * family.max_episode_steps


def _family(name: str, **extra):
    return make_task(name, **{**SMALL_PARAMS.get(name, {}), **extra})


def _clone(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in batch.items()}


def _continuous(family) -> bool:
    return family.continuous_actions


def _fixed_actions(step: int, n: int, family) -> torch.Tensor:
    """A deterministic action per slot: long [n], or float [n, action_dim] inside the bounds."""
    if not _continuous(family):
        return (step + torch.arange(n)) % family.num_actions
    low, high = family.action_bounds
    phase = (step + torch.arange(n)).view(-1, 1) + torch.arange(family.action_dim)
    return low + (high - low) * (0.5 + 0.5 * torch.sin(phase.float()))


def _no_action(family, view) -> torch.Tensor:
    """Where the previous action reads "none": -1 (discrete) or an all-zero vector."""
    if _continuous(family):
        return (view.prev_action == 0).all(1)
    return view.prev_action == -1


def _check_oracle(family, oracle: torch.Tensor) -> None:
    if _continuous(family):
        assert oracle.dtype == torch.float32 and oracle.shape == (BATCH, family.action_dim)
        assert torch.isfinite(oracle).all()
    else:
        assert oracle.dtype == torch.long and oracle.shape == (BATCH,)
        assert ((oracle >= 0) & (oracle < family.num_actions)).all()


def _assert_batched(batch: dict[str, torch.Tensor], n: int, what: str) -> None:
    for key, value in batch.items():
        assert isinstance(value, torch.Tensor) and value.shape[0] == n, f"{what}[{key}]"


@pytest.mark.parametrize("name", FAMILIES)
def test_sample_initial_state_observe_and_step_have_the_contract_shapes_and_dtypes(name):
    family = _family(name)
    generator = task_generator(0, "train")
    tasks = family.sample(BATCH, generator)
    _assert_batched(tasks, BATCH, "tasks")
    state = family.initial_state(tasks, generator)
    _assert_batched(state, BATCH, "state")
    low, high = family.obs_bounds
    for step in range(3):
        obs = family.observe(tasks, state)
        assert obs.dtype == torch.float32 and obs.shape == (BATCH, family.obs_dim)
        assert torch.isfinite(obs).all() and (obs >= low).all() and (obs <= high).all()
        oracle = family.oracle_action(tasks, state)
        _check_oracle(family, oracle)
        action = _fixed_actions(step, BATCH, family)
        after, reward, terminated = family.step(tasks, state, action, generator)
        assert reward.dtype == torch.float32 and reward.shape == (BATCH,)
        assert torch.isfinite(reward).all()
        assert terminated.dtype == torch.bool and terminated.shape == (BATCH,)
        assert set(after) == set(state)
        for key, value in after.items():
            assert value.shape == state[key].shape and value.dtype == state[key].dtype, key
        state = after


@pytest.mark.parametrize("name", FAMILIES)
def test_the_trial_engine_builds_phi_of_the_documented_width(name):
    family = _family(name)
    engine = TrialEngine(family, BATCH, task_generator(0, "train"))
    view = engine.start()
    width = phi_dim(family)
    action_width = family.action_width
    assert width == family.obs_dim + action_width + 2
    for step in range(3):
        assert view.phi.dtype == torch.float32 and view.phi.shape == (BATCH, width)
        transition, view = engine.step(_fixed_actions(step, BATCH, family))
        assert transition.reward.shape == (BATCH,) and transition.episode_done.dtype == torch.bool


def _rollout(name: str, seed: int, split: str = "train", steps: int = 30) -> list[torch.Tensor]:
    family = _family(name)
    engine = TrialEngine(family, BATCH, task_generator(seed, split))
    view = engine.start()
    record = [value.clone().float().flatten() for value in engine.tasks.values()]
    for step in range(steps):
        record.append(view.obs.clone())
        transition, view = engine.step(_fixed_actions(step, BATCH, family))
        record += [transition.reward, transition.episode_done.float()]
    return record


def _same(first: list[torch.Tensor], second: list[torch.Tensor]) -> bool:
    return all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize("name", FAMILIES)
def test_a_seed_fixes_the_task_batch_and_the_trajectory_and_other_seeds_differ(name):
    assert _same(_rollout(name, 0), _rollout(name, 0))
    assert not _same(_rollout(name, 0), _rollout(name, 1))
    assert not _same(_rollout(name, 0, "train"), _rollout(name, 0, "test"))


def _predicted_termination(family, engine, action: torch.Tensor) -> torch.Tensor:
    """What ``family.step`` will report as ``terminated`` for the engine's next step."""
    generator = torch.Generator(device=engine.device)
    generator.set_state(engine.generator.get_state())
    _, _, terminated = family.step(_clone(engine.tasks), _clone(engine.state), action, generator)
    return terminated


def _static_tasks(family, tasks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    evolving = set(type(family).evolving_task_keys)
    return {key: value.clone() for key, value in tasks.items() if key not in evolving}


def _slots_equal(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> torch.Tensor:
    equal = torch.ones(BATCH, dtype=torch.bool)
    for key, value in before.items():
        equal &= (value == after[key]).reshape(BATCH, -1).all(1)
    return equal


def _check_view_after_step(family, view, action, transition) -> None:
    """Reset exactly at trial starts; previous action, reward, done cleared there, else carried."""
    start = view.reset
    assert torch.equal(start, transition.trial_done)
    assert _no_action(family, view)[start].all() and (view.prev_reward[start] == 0).all()
    assert not view.prev_done[start].any() and not view.phi[start, family.obs_dim :].any()
    carry = ~start
    assert torch.equal(view.prev_action[carry], action[carry])
    assert torch.equal(view.prev_reward[carry], transition.reward[carry])
    assert torch.equal(view.prev_done[carry], transition.episode_done[carry])


@pytest.mark.parametrize("name", FAMILIES)
def test_trial_boundaries_episodes_end_on_termination_or_time_and_tasks_change_only_there(name):
    family = _family(name)
    engine = TrialEngine(family, BATCH, task_generator(2, "train"))
    view = engine.start()
    assert view.reset.all() and _no_action(family, view).all() and not view.episode_index.any()
    episode_step = torch.zeros(BATCH, dtype=torch.long)
    episode_index = torch.zeros(BATCH, dtype=torch.long)
    trials_ended = torch.zeros(BATCH, dtype=torch.long)
    redrawn = False
    for step in range(_two_trials_bound(family)):
        action = _fixed_actions(step, BATCH, family)
        terminated = _predicted_termination(family, engine, action)
        static_before = _static_tasks(family, engine.tasks)
        transition, view = engine.step(action)

        episode_step += 1
        episode_done = terminated | (episode_step >= family.max_episode_steps)
        trial_done = episode_done & (episode_index + 1 >= family.episodes_per_trial)
        assert torch.equal(transition.episode_done, episode_done), step
        assert torch.equal(transition.trial_done, trial_done), step
        assert torch.equal(transition.episode_index, episode_index), step
        _check_view_after_step(family, view, action, transition)

        unchanged = _slots_equal(static_before, engine.tasks)
        assert unchanged[~trial_done].all(), f"a task changed inside a trial at step {step}"
        redrawn |= bool((~unchanged[trial_done]).any())
        episode_index = torch.where(trial_done, 0, episode_index + episode_done.long())
        episode_step = torch.where(episode_done, 0, episode_step)
        assert torch.equal(view.episode_index, episode_index), step
        trials_ended += trial_done.long()
        if bool((trials_ended >= 2).all()):
            break
    assert (trials_ended >= 2).all(), "two trials did not end within their step bound"
    if _static_tasks(family, engine.tasks):  # else every task entry evolves (nothing to compare)
        assert redrawn, "no slot drew a different task at a trial boundary"


@pytest.mark.parametrize("name", FAMILIES)
def test_the_gymnasium_face_passes_check_env_and_one_gym_episode_is_one_trial(name):
    params = SMALL_PARAMS.get(name, {})
    family = TASKS[name]
    check_env(gym.make(family.gym_id, **params).unwrapped, skip_render_check=True)
    wrapped = MetaRLObservation(gym.make(family.gym_id, **params))
    check_env(wrapped, skip_render_check=True)
    env = gym.make(family.gym_id, **params)
    env.reset(seed=0)
    env.action_space.seed(0)
    episodes, terminated, truncated, steps = 0, False, False, 0
    while not (terminated or truncated) and steps < _two_trials_bound(_family(name)):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        episodes += info["episode_done"]
        steps += 1
    assert terminated and episodes == _family(name).episodes_per_trial


def _split_tasks(name: str, split: str, n: int):
    family_class = TASKS[name]
    extra = {"split": split} if "split" in family_class.Config.__dataclass_fields__ else {}
    family = _family(name, **extra)
    return family, family.sample(n, task_generator(0, split))


@pytest.mark.parametrize("name", FAMILIES)
def test_held_out_tasks_are_disjoint_from_training_tasks_where_the_family_is_finite(name):
    if not TASKS[name].finite_tasks:
        pytest.skip(
            f"{name} is not a finite task set (finite_tasks unset): its held-out trials come "
            "from the separate test seed stream, checked by the seeding test"
        )
    family, train = _split_tasks(name, "train", 64)
    keys_train = family.task_keys(train)
    assert len(keys_train) == 64
    test_family, test = _split_tasks(name, "test", 64)
    keys_test = test_family.task_keys(test)
    assert len(keys_test) == 64
    assert not set(keys_train) & set(keys_test), "a test task is also a training task"


@pytest.mark.parametrize("name", FAMILIES)
def test_reference_scores_are_finite_and_random_does_not_beat_the_oracle(name):
    family = _family(name)
    tasks = family.sample(16, task_generator(0, "test"))
    references = family.reference_scores(tasks)
    assert set(references) >= {"random", "oracle"}
    for key in ("random", "oracle"):
        assert references[key].shape == (16,), key
        if key == "oracle" and not family.has_oracle:
            finite = torch.isfinite(references[key])
            assert finite.all() or torch.isnan(references[key]).all(), key
            if not finite.all():
                return
        assert torch.isfinite(references[key]).all(), key
    random_mean, oracle_mean = references["random"].mean().item(), references["oracle"].mean()
    assert random_mean <= oracle_mean.item() + 1e-6 * max(1.0, math.fabs(random_mean))
