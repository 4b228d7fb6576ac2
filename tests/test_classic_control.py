"""The classic-control families step gymnasium's equations, with constants drawn per trial."""

from __future__ import annotations

import inspect
import math
import textwrap

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.acrobot import AcrobotEnv

from benchmark.cli import main
from benchmark.run.config import load_run_config
from tasks import ConfigError, TrialEngine, make_task, task_generator

FAMILIES = ("cartpole-params", "pendulum-params", "acrobot-params")


def _one_task(tasks: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    return {key: value[i : i + 1] for key, value in tasks.items()}


class GravityAcrobot(AcrobotEnv):
    """Gymnasium's Acrobot with its hard-coded g = 9.8 read from ``self.gravity`` instead.

    The derivative is gymnasium's own ``_dsdt`` source with that one line changed.
    """

    gravity = 9.8


_DSDT = inspect.getsource(AcrobotEnv._dsdt)
assert _DSDT.count("g = 9.8\n") == 1
_namespace = dict(vars(inspect.getmodule(AcrobotEnv)))
exec(textwrap.dedent(_DSDT.replace("g = 9.8\n", "g = self.gravity\n")), _namespace)  # noqa: S102
GravityAcrobot._dsdt = _namespace["_dsdt"]


def _gym_cartpole(task):
    env = gym.make("CartPole-v1").unwrapped
    env.reset(seed=0)
    env.masscart, env.masspole = float(task["masscart"]), float(task["masspole"])
    env.length, env.gravity = float(task["length"]), float(task["gravity"])
    env.force_mag = float(task["force_mag"])
    env.total_mass = env.masspole + env.masscart
    env.polemass_length = env.masspole * env.length
    return env


def _gym_pendulum(task):
    env = gym.make("Pendulum-v1").unwrapped
    env.reset(seed=0)
    env.m, env.l, env.g = float(task["m"]), float(task["l"]), float(task["g"])
    return env


def _gym_acrobot(task):
    env = GravityAcrobot()
    env.reset(seed=0)
    env.LINK_MASS_1, env.LINK_MASS_2 = float(task["link_mass_1"]), float(task["link_mass_2"])
    env.LINK_LENGTH_1, env.LINK_LENGTH_2 = (
        float(task["link_length_1"]),
        float(task["link_length_2"]),
    )
    env.LINK_COM_POS_1, env.LINK_COM_POS_2 = env.LINK_LENGTH_1 / 2, env.LINK_LENGTH_2 / 2
    env.gravity = float(task["gravity"])
    env.LINK_MOI = float(task["link_moi"])
    return env


GYM_ENVS = {
    "cartpole-params": _gym_cartpole,
    "pendulum-params": _gym_pendulum,
    "acrobot-params": _gym_acrobot,
}


def _gym_action(family, name: str, action: int):
    if name == "pendulum-params":
        return np.array([float(family.torques("cpu")[action])], dtype=np.float64)
    return action


def _compare_trajectory(name: str, dtype: str, draws: int, steps: int, per_step: bool):
    """Step gymnasium beside the family with the same constants and actions; return max error."""
    family = make_task(name, dtype=dtype)
    generator = task_generator(7, "train")
    tasks = family.sample(draws, generator)
    actions = torch.Generator().manual_seed(3)
    worst = 0.0
    for i in range(draws):
        task = _one_task(tasks, i)
        env = GYM_ENVS[name]({k: v.item() for k, v in task.items()})
        state = family.initial_state(task, generator)
        env.state = state["s"][0].double().numpy().copy()
        for _ in range(steps):
            action = int(torch.randint(family.num_actions, (1,), generator=actions))
            obs, reward, terminated, _, _ = env.step(_gym_action(family, name, action))
            state, ours, our_terminated = family.step(task, state, torch.tensor([action]), None)
            worst = max(worst, float(np.abs(state["s"][0].double().numpy() - env.state).max()))
            np.testing.assert_allclose(family.observe(task, state)[0].numpy(), obs, atol=1e-5)
            assert math.isclose(float(ours[0]), reward, abs_tol=1e-4)
            assert bool(our_terminated[0]) == terminated
            if terminated:  # both restart from our fresh state
                state = family.initial_state(task, generator)
            if terminated or per_step:  # per step: gymnasium continues from our state
                env.state = state["s"][0].double().numpy().copy()
                env.steps_beyond_terminated = None  # cartpole's "stepped after the end" flag
    return worst


@pytest.mark.parametrize("name", FAMILIES)
def test_float64_trajectories_match_gymnasium_over_150_steps(name):
    assert _compare_trajectory(name, "float64", draws=4, steps=150, per_step=False) < 1e-5


@pytest.mark.parametrize("name", FAMILIES)
def test_float32_steps_match_gymnasium_from_the_same_state(name):
    assert _compare_trajectory(name, "float32", draws=3, steps=100, per_step=True) < 1e-5


def test_acrobot_with_its_default_constants_is_gymnasiums_own_acrobot():
    """The gravity patch of the test is not needed at g = 9.8: compare with the stock class."""
    unit = [1.0, 1.0]
    family = make_task(
        "acrobot-params",
        dtype="float64",
        link_mass_1_range=unit,
        link_mass_2_range=unit,
        link_length_1_range=unit,
        link_length_2_range=unit,
        gravity_range=[9.8, 9.8],
    )
    env = gym.make("Acrobot-v1").unwrapped
    obs, _ = env.reset(seed=5)
    task = family.sample(1, task_generator(0, "test"))
    state = {"s": torch.tensor([env.state], dtype=torch.float64)}
    for step in range(120):
        action = step // 10 % 3
        obs, reward, terminated, _, _ = env.step(action)
        state, ours, _ = family.step(task, state, torch.tensor([action]), None)
        np.testing.assert_allclose(state["s"][0].numpy(), env.state, atol=1e-9)


@pytest.mark.parametrize("name", FAMILIES)
def test_parameters_lie_in_their_ranges_and_cover_them(name):
    family = make_task(name)
    tasks = family.sample(4000, task_generator(1, "train"))
    for key in family.config.ranged_keys():
        low, high = getattr(family.config, key)
        values = tasks[key.removesuffix("_range")]
        if low == high:  # a fixed constant (acrobot's inertia by default)
            assert (values == low).all(), key
            continue
        assert values.min() >= low and values.max() <= high, key
        assert values.min() < low + 0.01 * (high - low) and values.max() > high - 0.01 * (
            high - low
        )


PACKER = {
    "cartpole-params": {
        "packer": {"force_mag": [(5, 15)], "length": [(0.25, 0.75)], "masspole": [(0.05, 0.5)]},
        "packer-extreme": {
            "force_mag": [(1, 5), (15, 20)],
            "length": [(0.05, 0.25), (0.75, 1.0)],
            "masspole": [(0.01, 0.05), (0.5, 1.0)],
        },
    },
    "pendulum-params": {
        "packer": {"l": [(0.75, 1.25)], "m": [(0.75, 1.25)]},
        "packer-extreme": {"l": [(0.5, 0.75), (1.25, 1.5)], "m": [(0.5, 0.75), (1.25, 1.5)]},
    },
}
"""Packer et al. 2018's R ('packer') and E ('packer-extreme') ranges, as the paper gives them."""
NOMINAL = {"masscart": 1.0, "gravity": 9.8, "g": 10.0}


@pytest.mark.parametrize(
    ("name", "preset"), [(name, preset) for name in PACKER for preset in PACKER[name]]
)
def test_packer_presets_sample_their_intervals_and_the_union_uniformly(name, preset):
    family = make_task(name, ranges=preset, dtype="float64")
    tasks = family.sample(20000, task_generator(1, "train"))
    for key, values in tasks.items():
        if key in NOMINAL:  # not varied by Packer et al.: gymnasium's value
            assert (values == NOMINAL[key]).all(), key
            continue
        intervals = PACKER[name][preset][key]
        inside = [(values >= low) & (values <= high) for low, high in intervals]
        assert torch.stack(inside).any(0).all(), key
        total = sum(high - low for low, high in intervals)
        for (low, high), hit in zip(intervals, inside, strict=True):
            share = float(hit.double().mean())  # probability proportional to the length
            assert abs(share - (high - low) / total) < 0.02, (key, low, high, share)
            assert values[hit].min() < low + 0.01 * (high - low), key
            assert values[hit].max() > high - 0.01 * (high - low), key


def test_a_preset_changes_sampling_and_refuses_a_range_set_beside_it():
    suite = make_task("cartpole-params").sample(8, task_generator(0, "train"))
    packer = make_task("cartpole-params", ranges="packer").sample(8, task_generator(0, "train"))
    assert not torch.equal(suite["masspole"], packer["masspole"])
    with pytest.raises(ConfigError, match="task.length_range cannot be set with task.ranges"):
        make_task("cartpole-params", ranges="packer", length_range=[0.3, 0.4])
    with pytest.raises(ConfigError, match="task.ranges must be one of"):
        make_task("pendulum-params", ranges="packer-wide")


def test_a_degenerate_range_fixes_the_parameter():
    family = make_task("pendulum-params", m_range=[1.25, 1.25])
    assert (family.sample(50, task_generator(0, "train"))["m"] == 1.25).all()


@pytest.mark.parametrize("name", FAMILIES)
def test_seeding_is_deterministic_and_splits_differ(name):
    family = make_task(name)

    def draw(seed, split):
        generator = task_generator(seed, split)
        tasks = family.sample(16, generator)
        state = family.initial_state(tasks, generator)
        return torch.cat([torch.stack(list(tasks.values()), 1), state["s"]], 1)

    torch.testing.assert_close(draw(3, "train"), draw(3, "train"))
    assert not torch.allclose(draw(3, "train"), draw(4, "train"))
    assert not torch.allclose(draw(3, "tune"), draw(3, "test"))


@pytest.mark.parametrize("name", FAMILIES)
def test_a_trial_keeps_its_constants_across_episodes_and_restarts_each_episode(name):
    family = make_task(name, episodes=3, max_steps=30)
    engine = TrialEngine(family, 8, task_generator(0, "test"), auto_reset=False)
    view = engine.start()
    first = {key: value.clone() for key, value in view.tasks.items()}
    actions = torch.Generator().manual_seed(0)
    episode_lengths = torch.zeros(8, 3, dtype=torch.long)
    while not engine.all_done():
        action = torch.randint(family.num_actions, (8,), generator=actions)
        transition, view = engine.step(action)
        index = transition.episode_index.clamp(max=2)
        episode_lengths[torch.arange(8), index] += transition.active.long()
        assert not (view.reset & view.active).any()  # no hidden-state reset inside a trial
        restarted = transition.episode_done & view.active
        bound = 0.05 if name == "cartpole-params" else (math.pi if "pendulum" in name else 0.1)
        assert (view.state["s"][restarted, 0].abs() <= bound).all()
    for key, value in first.items():
        torch.testing.assert_close(engine.tasks[key], value)
    assert (episode_lengths >= 1).all() and (episode_lengths <= 30).all()
    assert (engine.episode_index == 3).all()


def test_training_draws_new_constants_when_a_trial_ends():
    family = make_task("pendulum-params", episodes=2, max_steps=5)
    engine = TrialEngine(family, 4, task_generator(0, "train"))
    view = engine.start()
    first = view.tasks["m"].clone()
    for step in range(10):
        transition, view = engine.step(torch.zeros(4, dtype=torch.long))
        assert bool(transition.trial_done.all()) == (step == 9)
    assert view.reset.all() and not torch.allclose(view.tasks["m"], first)


@pytest.mark.parametrize("name", FAMILIES)
def test_the_oracle_beats_random_by_a_wide_margin(name):
    family = make_task(name, reference_rollouts=2)
    tasks = family.sample(64, task_generator(0, "test"))
    scores = family.reference_scores(tasks)
    gap = (scores["oracle"] - scores["random"]).mean()
    span = {"cartpole-params": 200, "pendulum-params": 1000, "acrobot-params": 100}[name]
    assert gap > span, scores
    torch.testing.assert_close(family.reference_scores(tasks)["oracle"], scores["oracle"])


def test_cartpole_oracle_balances_the_pole_for_the_whole_trial():
    family = make_task("cartpole-params", reference_rollouts=1)
    scores = family.reference_scores(family.sample(64, task_generator(2, "test")))
    assert (scores["oracle"] == 2 * 200).all()


def test_pendulum_actions_are_evenly_spaced_torques():
    family = make_task("pendulum-params", torque_levels=3, max_torque=1.5)
    assert family.num_actions == 3
    torch.testing.assert_close(family.torques("cpu"), torch.tensor([-1.5, 0.0, 1.5]))
    assert family.fixed_trial_steps == 2 * 200


def test_acrobot_damping_slows_the_links():
    free, damped = make_task("acrobot-params"), make_task("acrobot-params", damping=0.5)
    tasks = free.sample(32, task_generator(0, "test"))
    state = {"s": torch.tensor([[0.5, -0.5, 2.0, -2.0]]).expand(32, 4)}
    action = torch.ones(32, dtype=torch.long)
    free_next, _, _ = free.step(tasks, state, action, None)
    damped_next, _, _ = damped.step(tasks, state, action, None)
    assert (damped_next["s"][:, 2:].norm(dim=1) < free_next["s"][:, 2:].norm(dim=1)).all()


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("cartpole-params", {"length_range": [2.0, 1.0]}, "task.length_range: low 2.0 > high 1.0"),
        ("pendulum-params", {"m_range": [0.0, 1.0]}, "task.m_range must be > 0, got low 0.0"),
        (
            "acrobot-params",
            {"link_length_2_range": [-1, 1]},
            "task.link_length_2_range must be > 0",
        ),
        ("pendulum-params", {"l_range": [1.0]}, "task.l_range must be a list of two numbers"),
        ("pendulum-params", {"g_range": [1, 2, 3]}, "task.g_range must be a list of two numbers"),
        ("pendulum-params", {"torque_levels": 1}, "task.torque_levels must be an integer >= 2"),
        ("cartpole-params", {"episodes": 0}, "task.episodes must be an integer >= 1"),
        ("cartpole-params", {"dtype": "float16"}, "task.dtype must be one of float32, float64"),
        ("acrobot-params", {"book_or_nips": "paper"}, "task.book_or_nips must be one of book"),
        ("acrobot-params", {"damping": -0.1}, "task.damping must be >= 0"),
    ],
)
def test_bad_parameters_are_one_line_config_errors(name, params, message):
    with pytest.raises(ConfigError) as error:
        make_task(name, **params)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["task.m_range=[2,1]"], "task.m_range: low 2.0 > high 1.0"),
        (["task.l_range=[0,1]"], "task.l_range must be > 0"),
        (["task.g_range=[1,2,3]"], "task.g_range must be a list of two numbers"),
        (["task.m_range=[1,x]"], "m_range"),
    ],
)
def test_bad_ranges_through_the_cli_exit_2_with_one_line(argv, needle, tracking_uri, capsys):
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(["run", "rl2", "pendulum-params", *argv]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_pendulum_pair_defaults_load_for_rl2_and_a2c():
    rl2 = load_run_config("rl2", "pendulum-params", [])
    assert rl2.config.algo.gae_lambda == 0.95 and rl2.config.trainer.env_steps == 2_000_000
    a2c = load_run_config("a2c", "pendulum-params", ["task.l_range=[0.8,1.2]"])
    assert a2c.config.algo.gamma == 0.99 and list(a2c.config.task.l_range) == [0.8, 1.2]
    assert a2c.config.algo.normalize_values and a2c.config.algo.gae_lambda == 0.95  # LSTM-A2C's
