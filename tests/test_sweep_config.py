"""Sweep YAMLs expand into validated jobs whose hashes identify their resolved configs."""

from __future__ import annotations

import pytest
import yaml

from benchmark.run.config import load_run_config
from benchmark.sweeps.grid import load_sweep, sweep_names
from tasks import ConfigError


def _write(tmp_path, **sweep):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"seeds": 2, **sweep}))
    return str(path)


def test_grid_and_variants_expand_with_seeds_and_strategies(tmp_path):
    path = _write(
        tmp_path,
        overrides={"trainer.env_steps": 1000},
        algorithms=["lstm-a2c"],
        strategies=["random", "oracle"],
        tasks=[
            {"name": "bernoulli-bandit", "grid": {"arms": [2, 3], "pulls": [4, 6]}},
            {"name": "dependent-bandit", "variants": [{"difficulty": "easy", "pulls": 4}]},
        ],
        exclude=[{"name": "oracle", "task": "bernoulli-bandit", "match": {"arms": 3}}],
    )
    sweep = load_sweep(path, [])
    settings = {job.setting for job in sweep.jobs}
    assert settings == {
        "bernoulli-bandit arms=2 pulls=4",
        "bernoulli-bandit arms=2 pulls=6",
        "bernoulli-bandit arms=3 pulls=4",
        "bernoulli-bandit arms=3 pulls=6",
        "dependent-bandit difficulty=easy pulls=4",
    }
    learned = [job for job in sweep.jobs if job.kind == "learned"]
    oracle = [job for job in sweep.jobs if job.name == "oracle"]
    assert len(learned) == 5 * 2 and len(oracle) == 3 * 2
    assert len({job.config_hash for job in sweep.jobs}) == len(sweep.jobs)
    assert sweep.name == "s" and sweep.experiment == "s" and sweep.seeds == [0, 1]


def test_job_hash_is_the_run_config_hash_the_worker_rebuilds(tmp_path):
    path = _write(
        tmp_path,
        overrides={"trainer.env_steps": 1000},
        algorithms=[{"name": "lstm-a2c", "overrides": {"algo.lr": 0.001}}],
        tasks=[{"name": "bernoulli-bandit", "variants": [{"arms": 3, "pulls": 4}]}],
    )
    for job in load_sweep(path, ["seeds=[4, 9]"]).jobs:
        spec = load_run_config(job.name, job.task, job.overrides)
        assert spec.config_hash() == job.config_hash
        assert spec.config.algo.lr == 0.001 and spec.seed in (4, 9)
        assert job.params["trainer.env_steps"] == 1000 and job.task_params["arms"] == 3


def test_command_line_keys_change_the_runs_and_their_hashes(tmp_path):
    path = _write(
        tmp_path, algorithms=["lstm-a2c"], strategies=["random"], tasks=["bernoulli-bandit"]
    )
    base = load_sweep(path, [])
    changed = load_sweep(path, ["eval.trials=7", "name=other", "seeds=3"])
    assert changed.name == "other" and changed.seeds == [0, 1, 2]
    assert {job.trials for job in changed.jobs} == {7}
    assert not {j.config_hash for j in base.jobs} & {j.config_hash for j in changed.jobs}
    assert {j.config_hash for j in load_sweep(path, []).jobs} == {j.config_hash for j in base.jobs}


def test_builtin_sweeps_validate():
    assert sweep_names() == ["bandits", "full", "quick"]
    quick = load_sweep("quick", [])
    assert len(quick.seeds) >= 3
    assert {job.kind for job in quick.jobs} == {"learned", "classical"}


def test_a_strategy_that_fits_no_task_is_refused(tmp_path):
    from baselines.strategies import STRATEGIES, register_strategy

    register_strategy("mdp-only", families=("tabular-mdp",))(lambda family: None)
    try:
        path = _write(tmp_path, strategies=["mdp-only"], tasks=["bernoulli-bandit"])
        with pytest.raises(ConfigError, match="supports none of the sweep's tasks"):
            load_sweep(path, [])
    finally:
        del STRATEGIES["mdp-only"]
