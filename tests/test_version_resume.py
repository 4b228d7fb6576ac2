"""A sweep worker continues an interrupted run from its checkpoint only under the family version
the checkpoint was written at; after a version bump the run trains from the start."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from store_support import fresh_store

from benchmark.run.checkpoints import read_checkpoint, write_checkpoint
from benchmark.sweeps.driver import SweepDriver
from benchmark.sweeps.grid import load_sweep
from benchmark.sweeps.worker import execute_job
from tasks import TASKS


def test_a_checkpoint_of_another_family_version_is_not_resumed(tmp_path, monkeypatch, capfd):
    """The worker trains from zero, and the sweep driver does not count it as resumable."""
    sweep = {
        "name": "bump",
        "seeds": [0, 1],
        "overrides": {"trainer.env_steps": 2000, "eval.trials": 20, "algo.batch_size": 64},
        "algorithms": ["lstm-a2c"],
        "tasks": [{"name": "bernoulli-bandit", "variants": [{"arms": 2, "pulls": 5}]}],
    }
    path = tmp_path / "bump.yaml"
    path.write_text(yaml.safe_dump(sweep))
    job = load_sweep(str(path), ["trainer.checkpoint_every=500"]).jobs[0]
    job.checkpoint = str(tmp_path / "run.ckpt")
    fresh = execute_job(job)
    assert fresh["status"] == "FINISHED"
    checkpoint = read_checkpoint(Path(job.checkpoint))  # the last one before the end
    assert checkpoint["task_version"] == "1" and 0 < int(checkpoint["module"]["env_steps"]) < 2000
    shutil.copy(job.checkpoint, tmp_path / "version1.ckpt")

    monkeypatch.setattr(TASKS["bernoulli-bandit"], "version", 2)
    capfd.readouterr()
    bumped = execute_job(job)
    assert bumped["status"] == "FINISHED" and "resumed_from_env_steps" not in bumped
    notes = [line for line in capfd.readouterr().err.splitlines() if "not resuming" in line]
    assert len(notes) == 1 and f"not resuming {job.checkpoint}" in notes[0]
    assert "bernoulli-bandit version 1, this checkout's bernoulli-bandit is version 2" in notes[0]
    assert bumped["summary"] == fresh["summary"]  # the same run, trained from zero
    # The fresh run's checkpoints carry the new version, and a later run resumes from them.
    assert read_checkpoint(Path(job.checkpoint))["task_version"] == "2"
    assert execute_job(job)["resumed_from_env_steps"] == int(checkpoint["module"]["env_steps"])

    # A checkpoint without task_version was written at version 1: refused under version 2.
    unversioned = {k: v for k, v in checkpoint.items() if k != "task_version"}
    write_checkpoint(unversioned, Path(job.checkpoint))
    assert "resumed_from_env_steps" not in execute_job(job)
    monkeypatch.setattr(TASKS["bernoulli-bandit"], "version", 1)
    shutil.copy(tmp_path / "version1.ckpt", job.checkpoint)
    assert execute_job(job)["resumed_from_env_steps"] == int(checkpoint["module"]["env_steps"])

    # The driver's start line counts only the checkpoints a worker would resume.
    (store := tmp_path / "store").mkdir()
    sweep = load_sweep(str(path), ["trainer.checkpoint_every=500"])
    driver = SweepDriver(sweep, fresh_store(store))
    driver.checkpoints.mkdir(parents=True)
    shutil.copy(tmp_path / "version1.ckpt", driver.checkpoints / f"{job.config_hash}.ckpt")
    capfd.readouterr()
    assert len(driver.prepare()) == 2
    assert "0 already finished, 2 to run (1 from a checkpoint)" in capfd.readouterr().err
    driver.client.set_terminated(driver.parent_id, "KILLED")  # this driver stops here
    monkeypatch.setattr(TASKS["bernoulli-bandit"], "version", 2)
    assert len(SweepDriver(sweep, driver.tracking_uri).prepare()) == 2
    err = capfd.readouterr().err
    assert "0 already finished, 2 to run\n" in err and "not resuming" not in err
