"""Held-out evaluation (``eval.task.*``) beside the training distribution, and success rates."""

from __future__ import annotations

import json

import pytest
import torch
from run_support import short_run

from baselines.policy import OraclePolicy, RandomPolicy
from benchmark.cli import main
from benchmark.run.config import heldout_task, load_run_config
from benchmark.run.evaluation import evaluate_policy, play_recorded
from benchmark.run.runner import eval_metrics
from benchmark.sweeps.grid import load_sweep
from tasks import ConfigError, make_task, task_generator

PACKER_R = {"force_mag": [(5.0, 15.0)], "length": [(0.25, 0.75)], "masspole": [(0.05, 0.5)]}
PACKER_E = {
    "force_mag": [(1.0, 5.0), (15.0, 20.0)],
    "length": [(0.05, 0.25), (0.75, 1.0)],
    "masspole": [(0.01, 0.05), (0.5, 1.0)],
}
"""Cartpole's Packer et al. R and E ranges, as the paper gives them."""


def _inside(tasks: dict[str, torch.Tensor], ranges: dict[str, list[tuple[float, float]]]) -> bool:
    for key, intervals in ranges.items():
        hits = [(tasks[key] >= low) & (tasks[key] <= high) for low, high in intervals]
        if not bool(torch.stack(hits).any(0).all()):
            return False
    return True


def test_a_run_evaluates_on_the_training_ranges_and_on_the_extreme_ones():
    overrides = ["task.ranges=packer", "eval.task.ranges=packer-extreme", "eval.trials=64"]
    run = short_run("rl2", "cartpole-params", [*overrides, "trainer.env_steps=800"])
    outcome, seed = run.outcome, 0
    # Training drew from the training ranges only.
    assert outcome.module.family.config.ranges == "packer"
    train = outcome.module.family.sample(512, task_generator(seed, "train"))
    assert _inside(train, PACKER_R) and not _inside(train, PACKER_E)
    # The held-out evaluation played the extreme ranges' test tasks: its references are theirs.
    assert outcome.heldout_task["ranges"] == "packer-extreme"
    extreme = make_task("cartpole-params", **outcome.heldout_task)
    tasks = extreme.sample(64, task_generator(seed, "test"))
    assert _inside(tasks, PACKER_E) and not _inside(tasks, PACKER_R)
    expected = extreme.reference_scores(tasks)["random"].mean().item()
    assert outcome.heldout.random_reference == pytest.approx(expected)
    assert outcome.result.random_reference != pytest.approx(expected)
    metrics = eval_metrics(outcome)
    for name in ("mean_total_reward", "stderr", "normalized_score", "success_rate"):
        assert metrics[f"eval/{name}"] == getattr(outcome.result, name)
        assert metrics[f"heldout/{name}"] == getattr(outcome.heldout, name)


def test_the_heldout_settings_are_part_of_the_config_and_its_hash():
    plain = load_run_config("rl2", "maze", ["task.size=5"])
    bigger = load_run_config("rl2", "maze", ["task.size=5", "eval.task.size=9"])
    assert plain.config_hash() != bigger.config_hash()
    assert heldout_task(plain) is None
    params = heldout_task(
        load_run_config("rl2", "maze", ["task.size=5", "eval.task.size=9", "eval.task.episodes=5"])
    )
    assert (params["size"], params["episodes"], params["view"]) == (9, 5, 3)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["eval.task.no_such=1"], "unknown key 'eval.task.no_such'; valid keys here: episodes"),
        (["eval.task.ranges=wide"], "task.ranges must be one of suite, packer, packer-extreme"),
        (["eval.task.max_steps=x"], "invalid value for 'eval.task.max_steps'"),
        (["eval.task.torque_levels=3"], "eval.task changes the policy's (input, action) sizes"),
    ],
)
def test_a_bad_heldout_key_or_value_exits_2_with_one_line(argv, needle, tracking_uri, capsys):
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(["run", "rl2", "pendulum-params", *argv]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_evaluate_reports_the_heldout_distribution_beside_the_training_one(capsys):
    argv = ["evaluate", "oracle", "cartpole-params", "task.ranges=packer", "--trials", "32"]
    assert (
        main([*argv, "eval.task.ranges=packer-extreme", "eval.task.max_steps=150", "--json"]) == 0
    )
    payload = json.loads(capsys.readouterr().out)
    assert payload["success_rate"] == 1.0  # the oracle balances every pole for 200 steps
    heldout = payload["heldout"]
    assert heldout["task"]["ranges"] == "packer-extreme" and heldout["task"]["max_steps"] == 150
    assert heldout["success_rate"] == 0.0  # 150-step episodes never reach 195 steps
    assert heldout["mean_total_reward"] <= 2 * 150


def test_a_sweep_carries_heldout_keys_to_learned_and_classical_runs(tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        "seeds: 2\nalgorithms: [rl2]\nstrategies: [random]\n"
        "tasks: [{name: cartpole-params, overrides: {task.ranges: packer}}]\n"
    )
    loaded = load_sweep(str(sweep), ["eval.task.ranges=packer-extreme"])
    assert {job.kind for job in loaded.jobs} == {"learned", "classical"}
    for job in loaded.jobs:
        assert job.params["eval.task.ranges"] == "packer-extreme", job.kind
        assert "eval.task.ranges=packer-extreme" in job.overrides
    with pytest.raises(ConfigError, match="unknown key 'eval.task.nope'"):
        load_sweep(str(sweep), ["eval.task.nope=1"])


@pytest.mark.parametrize("name", ["cartpole-params", "pendulum-params", "acrobot-params"])
def test_success_rates_separate_the_oracle_from_random(name):
    family = make_task(name, ranges="packer", reference_rollouts=1)
    oracle = evaluate_policy(OraclePolicy(), family, 32, seed=1)
    random = evaluate_policy(RandomPolicy(), family, 32, seed=1)
    assert 0.0 <= random.success_rate < 0.1 and oracle.success_rate > 0.5, (oracle, random)
    assert len(oracle.per_episode_success_rate) == family.episodes_per_trial
    assert oracle.success_rate == pytest.approx(sum(oracle.per_episode_success_rate) / 2)
    assert evaluate_policy(RandomPolicy(), make_task("bernoulli-bandit"), 8, 0).success_rate is None


def test_cartpole_success_is_an_episode_of_at_least_195_steps():
    oracle = OraclePolicy()
    long = evaluate_policy(oracle, make_task("cartpole-params", max_steps=195), 16, seed=2)
    short = evaluate_policy(oracle, make_task("cartpole-params", max_steps=194), 16, seed=2)
    assert (long.success_rate, short.success_rate) == (1.0, 0.0)


def test_pendulum_success_needs_100_upright_steps_at_the_end():
    family = make_task("pendulum-params", ranges="packer", reference_rollouts=1)
    assert evaluate_policy(OraclePolicy(), family, 32, seed=3).success_rate > 0.9
    short = make_task("pendulum-params", ranges="packer", max_steps=99, reference_rollouts=1)
    assert evaluate_policy(OraclePolicy(), short, 32, seed=3).success_rate == 0.0
    state = {"s": torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.1, 0.0], [2 * torch.pi - 1.0, 0.0]])}
    upright = family.success_signal({}, state, torch.zeros(4, dtype=torch.bool))
    assert upright.tolist() == [True, True, False, True]  # within pi / 3 of upright, wrapped


def test_acrobot_success_is_reaching_the_height_within_90_steps():
    family = make_task("acrobot-params", ranges="packer", reference_rollouts=1, max_steps=300)
    played = play_recorded(OraclePolicy(), family, 64, seed=4)
    ended_early = played.steps < 300  # only termination ends an episode before max_steps
    assert torch.equal(played.successes.bool(), ended_early & (played.steps <= 90))
    assert ended_early.any() and (played.steps > 90).any()


def test_maze_success_is_reaching_the_goal_before_truncation():
    family = make_task("maze", size=5, pool=64)
    assert evaluate_policy(OraclePolicy(), family, 32, seed=0).success_rate == 1.0
    short = evaluate_policy(OraclePolicy(), make_task("maze", size=5, pool=64, max_steps=3), 32, 0)
    assert 0.0 < short.success_rate < 1.0  # only goals within 3 moves of the start
