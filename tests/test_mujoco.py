"""MuJoCo families (optional extra): gymnasium-exact physics, per-trial dynamics, every learner.

Skipped as a whole when the ``mujoco`` extra is not installed, except the test of the one-line
install message, which simulates the missing package.
"""

from __future__ import annotations

import math
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from run_support import short_run

from baselines.policy import RandomPolicy
from benchmark.cli import main
from benchmark.run.evaluation import evaluate_policy
from tasks import TrialEngine, make_task, task_generator
from tasks.mujoco.simulator import INSTALL_HINT, without_mujoco_warnings

FAMILIES = ("halfcheetah-vel", "halfcheetah-dir", "halfcheetah-params", "hopper-params")
ALGORITHMS = ("rl2", "lstm-a2c", "lstm-a3c", "a2c")
NOMINAL = {"mass_scale": 1.0, "damping_scale": 1.0, "friction_scale": 1.0}

mujoco = pytest.importorskip("mujoco")
gym = pytest.importorskip("gymnasium")


def physics_of(env) -> torch.Tensor:
    """The full physics state of a gymnasium MuJoCo env, as one row of the family's EnvState."""
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state = np.zeros(mujoco.mj_stateSize(env.model, spec))
    mujoco.mj_getState(env.model, env.data, state, spec)
    return torch.from_numpy(state)[None]


@pytest.mark.parametrize(
    ("name", "env_id", "params"),
    [
        ("halfcheetah-params", "HalfCheetah-v5", NOMINAL),
        ("hopper-params", "Hopper-v5", NOMINAL),
        ("halfcheetah-vel", "HalfCheetah-v5", {}),
        ("halfcheetah-dir", "HalfCheetah-v5", {}),
    ],
)
def test_a_step_reproduces_gymnasiums_own_env_step(name, env_id, params):
    family = make_task(name, **params)
    env = without_mujoco_warnings(mujoco, lambda: gym.make(env_id).unwrapped)
    env.reset(seed=3)
    tasks = family.sample(1, task_generator(0, "train"))
    state = {"physics": physics_of(env)}
    generator = torch.Generator().manual_seed(0)
    for t in range(20):
        action = np.clip(np.sin(np.arange(family.action_dim) + t), -1, 1).astype(np.float32)
        obs, reward, terminated, _, info = env.step(action)
        state, ours, ended = family.step(tasks, state, torch.from_numpy(action)[None], generator)
        np.testing.assert_allclose(family.observe(tasks, state)[0].numpy(), obs, atol=1e-5)
        if name == "halfcheetah-vel":
            target = float(tasks["target_velocity"][0])
            expected = -abs(info["x_velocity"] - target) - 0.05 * float(np.square(action).sum())
            assert ours.item() == pytest.approx(expected, abs=1e-4)
        elif name == "halfcheetah-dir":
            direction = float(tasks["direction"][0])
            expected = direction * info["x_velocity"] - 0.05 * float(np.square(action).sum())
            assert ours.item() == pytest.approx(expected, abs=1e-4)
        else:
            assert ours.item() == pytest.approx(reward, abs=1e-4)
        assert bool(ended[0]) == terminated


def test_halfcheetah_vel_samples_its_velocity_range_and_the_range_acts():
    assert make_task("halfcheetah-vel").config.velocity_high == 3.0  # PEARL/ProMP/VariBAD code
    for high in (3.0, 2.0):  # the standard range and MAML's
        family = make_task("halfcheetah-vel", episode_steps=5, velocity_high=high)
        target = family.sample(4000, task_generator(0, "train"))["target_velocity"]
        assert float(target.min()) >= 0.0 and float(target.max()) <= high
        assert float(target.max()) > 0.95 * high and abs(float(target.mean()) - high / 2) < 0.05
    narrow = make_task("halfcheetah-vel", velocity_low=1.0, velocity_high=1.5)
    target = narrow.sample(1000, task_generator(0, "train"))["target_velocity"]
    assert float(target.min()) >= 1.0 and float(target.max()) <= 1.5


def test_halfcheetah_dir_draws_both_directions_and_rewards_running_that_way():
    family = make_task("halfcheetah-dir", episode_steps=5)
    direction = family.sample(4000, task_generator(0, "train"))["direction"]
    assert set(direction.unique().tolist()) == {-1.0, 1.0}
    assert abs(float(direction.mean())) < 0.05
    assert family.has_oracle is False and family.gym_id == "metarl/HalfCheetahDir-v0"
    tasks = {"direction": torch.tensor([1.0, -1.0], dtype=torch.float64)}
    state = family.initial_state(tasks, torch.Generator().manual_seed(0))
    state = {"physics": state["physics"][:1].expand(2, -1).clone()}  # identical start
    velocity = torch.tensor([0.7, 0.7], dtype=torch.float64)
    cost = torch.tensor([2.0, 2.0], dtype=torch.float64)
    reward, _ = family._reward(tasks, state["physics"], velocity, cost)
    assert reward.tolist() == pytest.approx([0.7 - 0.1, -0.7 - 0.1])
    action = torch.zeros(2, 6)
    for _ in range(3):
        state, reward, _ = family.step(tasks, state, action, torch.Generator())
    assert reward[0].item() == pytest.approx(-reward[1].item())  # same motion, opposite sign
    references = family.reference_scores(tasks)
    assert torch.isnan(references["oracle"]).all() and torch.isfinite(references["random"]).all()


def test_dynamics_parameters_are_set_per_slot_and_change_at_trial_starts():
    family = make_task("hopper-params", episode_steps=5, episodes=1)
    engine = TrialEngine(family, 3, task_generator(0, "train"))
    engine.start()
    first = {key: value.clone() for key, value in engine.tasks.items()}
    assert not torch.equal(first["mass_factor"][0], first["mass_factor"][1])
    engine.step(torch.zeros(3, 3))
    sim = family.simulator
    for slot in range(3):
        factor = first["mass_factor"][slot].numpy()
        np.testing.assert_allclose(sim.slot_models[slot].body_mass, sim.nominal["mass"] * factor)
        friction = sim.nominal["friction"] * first["friction_factor"][slot].numpy()[:, None]
        np.testing.assert_allclose(sim.slot_models[slot].geom_friction, friction)
    assert not np.allclose(sim.slot_models[0].dof_damping, sim.slot_models[1].dof_damping)
    while not bool(engine.view.reset.any()):
        engine.step(torch.zeros(3, 3))
    engine.step(torch.zeros(3, 3))  # the first step of the new trials applies their parameters
    renewed = engine.view.reset | True
    for slot in torch.nonzero(renewed).flatten().tolist():
        factor = engine.tasks["mass_factor"][slot].numpy()
        np.testing.assert_allclose(sim.slot_models[slot].body_mass, sim.nominal["mass"] * factor)
    assert not torch.equal(engine.tasks["mass_factor"], first["mass_factor"])


def test_same_state_and_action_under_different_dynamics_give_different_next_states():
    family = make_task("halfcheetah-params", episode_steps=5)
    tasks = family.sample(2, task_generator(0, "train"))
    state = family.initial_state(tasks, torch.Generator().manual_seed(0))
    state = {"physics": state["physics"][:1].expand(2, -1).clone()}  # identical start
    after, _, _ = family.step(tasks, state, torch.ones(2, 6), torch.Generator())
    assert not torch.allclose(after["physics"][0], after["physics"][1])
    nominal = make_task("halfcheetah-params", **NOMINAL).sample(2, task_generator(0, "train"))
    assert torch.equal(nominal["mass_factor"], torch.ones_like(nominal["mass_factor"]))


def test_family_pickles_without_its_simulator_and_steps_after_unpickling():
    family = make_task("halfcheetah-vel", episode_steps=5)
    clone = pickle.loads(pickle.dumps(family))
    assert clone._sim is None
    tasks = family.sample(2, task_generator(0, "train"))
    state = family.initial_state(tasks, torch.Generator().manual_seed(0))
    action = torch.full((2, 6), 0.5)
    ours = family.step(tasks, state, action, torch.Generator())
    theirs = clone.step(tasks, state, action, torch.Generator())
    assert torch.equal(ours[0]["physics"], theirs[0]["physics"]) and torch.equal(ours[1], theirs[1])


def test_random_reference_is_a_monte_carlo_estimate_and_the_oracle_a_bound_or_nan():
    family = make_task("halfcheetah-vel", episode_steps=10, episodes=2)
    result = evaluate_policy(RandomPolicy(), family, 100, seed=0)
    assert math.isfinite(result.random_reference) and result.random_reference < 0
    spread = 4 * math.sqrt(2) * result.stderr
    assert abs(result.mean_total_reward - result.random_reference) < spread
    assert result.oracle_reference == 0.0 and abs(result.normalized_score) < 0.2
    params = make_task("hopper-params", episode_steps=10, episodes=1)
    result = evaluate_policy(RandomPolicy(), params, 8, seed=0)
    assert math.isfinite(result.random_reference) and math.isfinite(result.mean_total_reward)
    assert math.isnan(result.oracle_reference) and math.isnan(result.normalized_score)


def test_the_oracle_strategy_refuses_mujoco_families(tracking_uri, capsys):
    argv = ["evaluate", "oracle", "halfcheetah-vel", "task.episode_steps=5", "--trials", "2"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no oracle policy" in err


def test_without_the_extra_a_mujoco_task_is_one_line_with_the_install_command(tmp_path):
    script = (
        "import sys; sys.modules['mujoco'] = None\n"  # what an absent package looks like
        "from benchmark.cli import main\n"
        "sys.exit(main(['run', 'rl2', 'halfcheetah-vel']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and INSTALL_HINT in lines[0] and "halfcheetah-vel" in lines[0]
    assert not (tmp_path / "mlflow.db").exists()


SMOKE = ["task.episode_steps=10", "task.episodes=2", "algo.batch_size=4", "algo.hidden_size=16"]
SMOKE += ["trainer.env_steps=320", "eval.trials=6"]


def _smoke_cases() -> list:
    """Every (algorithm, family); LSTM-A3C's worker start-up (~10 s each) is slow beyond one."""
    slow = pytest.mark.slow
    return [
        pytest.param(algo, name, marks=slow if algo == "lstm-a3c" and name != FAMILIES[0] else ())
        for algo in ALGORITHMS
        for name in FAMILIES
    ]


@pytest.mark.parametrize(("algo", "name"), _smoke_cases())
def test_every_algorithm_trains_on_every_mujoco_family_through_the_runner(algo, name):
    overrides = [*SMOKE, "algo.workers=1"] if algo == "lstm-a3c" else SMOKE
    run = short_run(algo, name, overrides)
    module, result = run.outcome.module, run.outcome.result
    assert int(module.env_steps) >= 320
    assert run.finite("train/policy_loss") and run.finite("train/value_loss")
    assert run.finite("train/entropy") and run.finite("train/reward_per_step")
    assert not torch.equal(module.network.log_std.detach(), torch.zeros(module.family.action_dim))
    assert math.isfinite(result.mean_total_reward) and math.isfinite(result.random_reference)
    assert len(result.per_episode_returns) == 2


def test_a_table_of_runs_without_a_normalised_score_still_renders(tracking_uri, capsys):
    argv = ["run", "a2c", "hopper-params", *SMOKE, "--json"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["table", "--experiment", "metarl-bench", "--format", "markdown"]) == 0
    table = capsys.readouterr().out
    assert "## hopper-params" in table and "| a2c | learned | 1 |" in table
