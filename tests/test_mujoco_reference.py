"""Upper references of the MuJoCo families: the task revealed in the observation (``task.reveal``)
and scores normalised to the revealed-task runs (:mod:`benchmark.reporting.references`).

The MuJoCo tests are skipped when the ``mujoco`` extra is not installed; the normalisation tests
run on constructed run records and need no simulator.
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
import torch

from baselines import get_algorithm_class
from benchmark.cli import main
from benchmark.reporting.records import read_records, typed, write_records
from benchmark.reporting.references import reference_score, split_setting
from benchmark.reporting.table import report_from_records
from tasks import ConfigError, make_task, task_generator
from tasks.trial import phi_dim

needs_mujoco = pytest.mark.skipif(
    importlib.util.find_spec("mujoco") is None, reason="the mujoco extra is not installed"
)
FAMILIES = ("halfcheetah-vel", "halfcheetah-dir", "halfcheetah-params", "hopper-params")
TINY = ["task.episode_steps=10", "algo.batch_size=4", "algo.hidden_size=16", "eval.trials=4"]


def expected_features(name: str, family, tasks) -> torch.Tensor:
    """The task parameters as the family's docstring says reveal shows them, computed here."""
    config = family.config
    if name == "halfcheetah-vel":
        return (tasks["target_velocity"] / config.velocity_high)[:, None]
    if name == "halfcheetah-dir":
        return tasks["direction"][:, None]
    keys = ("mass", "damping", "friction")
    return torch.cat([tasks[f"{k}_factor"].log() / math.log(2.0) for k in keys], 1)


@needs_mujoco
@pytest.mark.parametrize("name", FAMILIES)
def test_reveal_appends_exactly_the_task_parameters_to_every_observation(name):
    hidden, revealed = make_task(name), make_task(name, reveal=True)
    tasks = hidden.sample(5, task_generator(0, "test"))
    state = hidden.initial_state(tasks, task_generator(1, "test"))
    plain, shown = hidden.observe(tasks, state), revealed.observe(tasks, state)
    sizes = {k: v.shape[1] for k, v in tasks.items() if v.dim() == 2}
    task_dim = sum(sizes.values()) or 1
    assert revealed.obs_dim == hidden.obs_dim + task_dim == shown.shape[1]
    assert torch.equal(shown[:, : hidden.obs_dim], plain)
    torch.testing.assert_close(
        shown[:, hidden.obs_dim :], expected_features(name, hidden, tasks).float()
    )
    assert shown[:, hidden.obs_dim :].abs().max() <= 1.0 + 1e-6
    assert shown[:, hidden.obs_dim :].std() > 0  # the five tasks differ, and so do their features


@needs_mujoco
def test_the_revealed_features_follow_the_trial_engine_to_each_new_task():
    from tasks import TrialEngine

    family = make_task("halfcheetah-dir", reveal=True, episode_steps=3, episodes=1)
    engine = TrialEngine(family, 64, task_generator(0, "train"))
    first = engine.start().obs[:, -1]
    before = engine.tasks["direction"].float()
    assert torch.equal(first, before)
    for _ in range(3):  # one 3-step episode: every slot starts a new trial (a new direction)
        view = engine.step(torch.zeros(64, family.action_dim))[1]
    after = engine.tasks["direction"].float()
    assert torch.equal(view.obs[:, -1], after) and not torch.equal(after, before)


@needs_mujoco
@pytest.mark.parametrize("name", ["halfcheetah-vel", "hopper-params"])
def test_a_policy_network_built_for_the_revealed_family_takes_the_wider_input(name):
    rl2 = get_algorithm_class("rl2")
    algo = asdict(rl2.Config(hidden_size=16))
    plain = rl2(algo, name, {})
    revealed = rl2(algo, name, {"reveal": True})
    widths = [m.network.rnn.input_size for m in (plain, revealed)]
    assert widths == [phi_dim(m.family) for m in (plain, revealed)]
    assert widths[1] - widths[0] == revealed.family.obs_dim - plain.family.obs_dim > 0


@needs_mujoco
@pytest.mark.parametrize("value", ["maybe", "0.5"])
def test_a_reveal_that_is_not_a_bool_is_one_line_naming_it(value, tracking_uri, capsys):
    assert main(["run", "rl2", "halfcheetah-dir", f"task.reveal={value}"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "task.reveal" in lines[0] and value in lines[0]
    with pytest.raises(ConfigError, match="task.reveal must be true or false"):
        make_task("hopper-params", reveal=1)


def test_reference_score_is_zero_at_random_one_at_the_reference_and_nan_without_span():
    scores = reference_score([-50.0, 150.0, 50.0, 7.0, 1.0], [-50.0] * 4 + [np.nan], [150.0] * 5)
    np.testing.assert_allclose(scores[:3], [0.0, 1.0, 0.5])
    assert math.isnan(reference_score(7.0, 10.0, 10.0)) and math.isnan(scores[4])
    assert math.isnan(reference_score(7.0, 10.0, 5.0))  # an "upper" reference below random
    assert split_setting("hopper-params episodes=2 reveal=True mass_scale=2.0") == (
        "hopper-params episodes=2 mass_scale=2.0",
        True,
    )
    assert split_setting("hopper-params reveal=False") == ("hopper-params", False)


def record(algorithm, seed, total, reveal=False, task="hopper-params", oracle=math.nan, kind=None):
    """One constructed run record (a NaN-oracle family unless ``oracle`` is given)."""
    setting = f"{task} episodes=2 reveal={reveal} mass_scale=2.0"
    random = -10.0 - seed  # each seed's held-out tasks have their own random reference
    span = oracle - random
    return {
        "algorithm": algorithm,
        "kind": kind or ("classical" if algorithm == "random" else "learned"),
        "task": task,
        "task_version": 1,
        "setting": setting,
        "task_params": json.dumps({"episodes": 2, "mass_scale": 2.0, "reveal": reveal}),
        "seed": seed,
        "config_hash": f"{algorithm}{reveal}{seed}",
        "trials": 8,
        "total_reward": total,
        "normalized_score": (total - random) / span if span > 0 else math.nan,
        "random_reference": random,
        "oracle_reference": oracle,
        "env_steps": 800,
        "protocol": "{}",
    }


def scores_of(report) -> dict[str, list[float]]:
    """Each algorithm's normalised scores, seed by seed, from the report's runs."""
    runs = report.runs.sort_values("seed")
    return {a: g["normalized_score"].tolist() for a, g in runs.groupby("algorithm")}


def test_scores_are_normalised_to_the_mean_of_the_revealed_runs_over_seeds():
    rows = [record("rl2", 0, 40.0, reveal=True), record("rl2", 1, 60.0, reveal=True)]
    rows += [record("rl2", 0, -10.0), record("rl2", 1, 50.0), record("a2c", 0, 30.0)]
    rows += [record("random", 0, -10.0)]
    report = report_from_records(typed(pd.DataFrame(rows)), None, ["constructed.csv"])
    scores = scores_of(report)
    # U = (40 + 60) / 2 = 50; R = -10 - seed.
    assert scores["rl2"] == pytest.approx([0.0, (50 + 11) / (50 + 11)])
    assert scores["rl2 (task revealed)"] == pytest.approx([50 / 60, 71 / 61])
    assert all(math.isnan(s) for s in scores["a2c"] + scores["random"])  # no revealed a2c runs
    assert set(report.runs["setting"]) == {"hopper-params episodes=2 mass_scale=2.0"}
    kinds = dict(zip(report.runs["algorithm"], report.runs["kind"], strict=True))
    assert kinds["rl2 (task revealed)"] == "reference" and kinds["rl2"] == "learned"
    assert any("Normalised to the revealed-task reference" in m for m in report.methods)


def test_without_revealed_runs_scores_stay_nan_and_with_an_oracle_the_oracle_stays():
    report = report_from_records(typed(pd.DataFrame([record("rl2", 0, 5.0)])), None, ["x.csv"])
    assert math.isnan(scores_of(report)["rl2"][0]) and not report.methods
    rows = [record("rl2", 0, 0.0, task="halfcheetah-vel", oracle=90.0)]
    rows += [record("rl2", 0, 40.0, reveal=True, task="halfcheetah-vel", oracle=90.0)]
    frame = typed(pd.DataFrame(rows))
    by_oracle = scores_of(report_from_records(frame, None, ["x.csv"]))
    by_reference = scores_of(report_from_records(frame, None, ["x.csv"], "revealed"))
    assert by_oracle["rl2"] == pytest.approx([10 / 100])  # (0 - -10) / (90 - -10)
    assert by_reference["rl2"] == pytest.approx([10 / 50])  # (0 - -10) / (40 - -10)
    assert by_reference["rl2 (task revealed)"] == pytest.approx([1.0])


def test_a_reference_at_another_budget_is_named_in_the_methods():
    rows = [record("rl2", 0, 40.0, reveal=True) | {"env_steps": 1600}, record("rl2", 0, 5.0)]
    report = report_from_records(typed(pd.DataFrame(rows)), None, ["x.csv"])
    assert any("1,600 env steps" in m and "800" in m for m in report.methods)


def test_table_from_records_shows_the_reference_row_and_refuses_an_unknown_mode(tmp_path, capsys):
    rows = [record("rl2", s, 40.0 + 10 * s, reveal=True) for s in (0, 1)]
    rows += [record("rl2", s, 20.0 + s) for s in (0, 1)]
    write_records(tmp_path / "runs.csv", typed(pd.DataFrame(rows)))
    assert main(["table", "--from", str(tmp_path / "runs.csv")]) == 0
    out = capsys.readouterr().out
    assert "## hopper-params episodes=2 mass_scale=2.0" in out
    assert "| rl2 (task revealed) | reference | 2 |" in out and "| rl2 | learned | 2 |" in out
    assert "normalised to the revealed-task reference" in out.lower()
    assert main(["table", "--from", str(tmp_path / "runs.csv"), "--normalise-to", "best"]) == 2
    assert "--normalise-to 'best'; valid: oracle, revealed" in capsys.readouterr().err


@needs_mujoco
def test_a_tiny_revealed_run_through_the_cli_becomes_the_reference_row(
    tracking_uri, tmp_path, capsys
):
    for reveal in ("true", "false"):
        argv = ["run", "rl2", "halfcheetah-dir", f"task.reveal={reveal}", "trainer.env_steps=800"]
        assert main([*argv, *TINY]) == 0
    capsys.readouterr()
    ledger = tmp_path / "ledger.csv"
    assert main(["table", "--experiment", "metarl-bench", "--export-runs", str(ledger)]) == 0
    out = capsys.readouterr().out
    assert "| rl2 (task revealed) | reference | 1 |" in out and "| rl2 | learned | 1 |" in out
    records = read_records([ledger])
    assert records["setting"].str.contains("reveal=True").sum() == 1
    assert records["random_reference"].notna().all() and records["oracle_reference"].isna().all()
    assert json.loads(records["task_params"].iloc[0])["reveal"] in ("True", "False")
    report = report_from_records(records, None, [str(ledger)])
    plain = report.runs[report.runs["algorithm"] == "rl2"].iloc[0]
    upper = report.runs[report.runs["kind"] == "reference"].iloc[0]
    expected = (plain.total_reward - plain.random_reference) / (
        upper.total_reward - plain.random_reference
    )
    if upper.total_reward > plain.random_reference:
        assert plain.normalized_score == pytest.approx(expected)
    else:  # an untrained reference below random: no score rather than a negative span
        assert math.isnan(plain.normalized_score)
