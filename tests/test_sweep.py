"""Sweeps end to end: real process pools, a real MLflow sqlite store, resume after ``kill -9``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from store_support import fresh_store

from benchmark.cli import main
from benchmark.reporting.records import read_records, write_records
from benchmark.sweeps.launchers import LocalLauncher

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "new_algorithm"
GRU = "my_pkg.gru_a2c:GRUA2C"


def write_sweep(folder: Path, name: str, **changes) -> Path:
    """A tiny sweep (seconds per run) written to ``folder/<name>.yaml``."""
    sweep = {
        "name": name,
        "seeds": 2,
        "overrides": {"trainer.env_steps": 3000, "eval.trials": 50, "algo.batch_size": 64},
        "algorithms": ["lstm-a2c"],
        "strategies": ["random", "oracle"],
        "tasks": [{"name": "bernoulli-bandit", "variants": [{"arms": 2, "pulls": 5}]}],
        **changes,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def runs_of(uri: str, experiment: str) -> pd.DataFrame:
    """Every run of ``experiment`` with its status and tags (parents included)."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    rows = []
    for run in client.search_runs([found.experiment_id], max_results=1000):
        tags = run.data.tags
        rows.append(
            {
                "run_id": run.info.run_id,
                "status": run.info.status,
                "role": tags.get("metarl.role"),
                "parent": tags.get("mlflow.parentRunId"),
                "algorithm": tags.get("algorithm"),
                "seed": run.data.params.get("seed"),
                "config_hash": tags.get("config_hash"),
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path, fresh_store(tmp_path)


def test_two_workers_with_a_user_algorithm_then_resume_skips_finished(workdir, capfd, monkeypatch):
    folder, uri = workdir
    monkeypatch.syspath_prepend(str(EXAMPLE))
    path = write_sweep(folder, "tiny", algorithms=["lstm-a2c", GRU])
    assert main(["--tracking-uri", uri, "sweep", str(path), "--workers", "2"]) == 0
    out, err = capfd.readouterr()
    assert "database is locked" not in err + out
    assert "8 to run" in err and "[8/8]" in err

    runs = runs_of(uri, "tiny")
    parents = runs[runs["role"] == "parent"]
    children = runs[runs["role"] == "child"]
    assert len(parents) == 1 and parents["status"].item() == "FINISHED"
    assert len(children) == 8 and set(children["status"]) == {"FINISHED"}
    assert set(children["parent"]) == {parents["run_id"].item()}
    workers = {
        MlflowClient(uri).get_run(run_id).data.tags["metarl.worker"]
        for run_id in children["run_id"]
    }
    assert len(workers) == 2, "both pool processes ran jobs"

    # The new algorithm sits in the table beside the baseline and the strategies, n = 2 seeds.
    assert f"| {GRU} | learned | 2 |" in out
    assert "| lstm-a2c | learned | 2 |" in out and "| oracle | classical | 2 |" in out
    assert (folder / "results" / "tiny.md").read_text().count(GRU) >= 2
    assert (folder / "results" / "tiny.csv").is_file()
    assert list((folder / "results" / "tiny").glob("adaptation_*.png"))

    # Rerun: everything finished is skipped; the table still has each run exactly once.
    assert main(["--tracking-uri", uri, "sweep", str(path), "--workers", "2"]) == 0
    out, err = capfd.readouterr()
    assert "8 already finished, 0 to run" in err
    runs = runs_of(uri, "tiny")
    assert (runs["role"] == "child").sum() == 8
    assert (runs["role"] == "parent").sum() == 2
    assert out.count(f"| {GRU} | learned | 2 |") == 1


@pytest.mark.parametrize(
    ("sweep", "cli", "message"),
    [
        ({"algorithms": ["nope"]}, [], "unknown algorithm 'nope'; valid algorithms: "),
        (
            {"tasks": ["nope-task"]},
            [],
            "unknown task 'nope-task'; valid tasks: acrobot-params, bernoulli-bandit",
        ),
        ({"algorithmz": ["lstm-a2c"]}, [], "unknown key 'algorithmz' in sweep"),
        ({"overrides": {"trainer.env_stepz": 1}}, [], "unknown key 'trainer.env_stepz'"),
        ({}, ["trainer.env_stepz=1"], "unknown key 'trainer.env_stepz'"),
        ({}, ["seedz=3"], "unknown sweep key 'seedz'"),
        ({"tasks": [{"name": "bernoulli-bandit", "grid": {"armz": [2]}}]}, [], "'task.armz'"),
        ({"algorithms": ["no_such_pkg.algo:Algo"]}, [], "cannot import algorithm"),
        ({"algorithms": ["collections:OrderedDict"]}, [], "is not a subclass of"),
        ({"strategies": ["nope"]}, [], "unknown strategy 'nope'"),
        ({"seeds": 1}, [], "at least 2 seeds"),
        ({}, ["--workers", "0"], "--workers must be >= 1, got 0"),
        ({}, ["--launcher", "slurm"], "unknown launcher 'slurm'"),
        ({}, ["--ray-address", "auto"], "--ray-address is only used with --launcher ray"),
    ],
)
def test_bad_sweep_input_is_one_line_exit_2_and_starts_nothing(
    tmp_path, monkeypatch, capsys, sweep, cli, message
):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path, "bad", **sweep)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["--tracking-uri", uri, "sweep", str(path), *cli]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "results").exists()
    assert _live_children() == []  # the pool started before validation was stopped


def test_the_local_pool_starts_every_worker_before_any_job_and_closes_once():
    launcher = LocalLauncher(2)
    try:
        assert len(_live_children()) == 2
    finally:
        launcher.close(cancel=True)
    assert _live_children() == []
    launcher.close(cancel=True)  # a second close (the CLI's, after the driver's) does nothing


def test_unknown_builtin_sweep_lists_the_builtins(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "nope"]) == 2
    assert "built-in sweeps: bandits, full, quick" in capsys.readouterr().err


def _children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z"


def _live_children() -> list[int]:
    """This process's live child processes, but for multiprocessing's resource tracker.

    The tracker is one helper per process, started with the first spawned worker; it holds no
    job and outlives the pool by design.
    """
    pids = [pid for pid in _children_of(os.getpid()) if _alive(pid)]
    return [pid for pid in pids if b"resource_tracker" not in _command_line(pid)]


def _command_line(pid: int) -> bytes:
    path = Path(f"/proc/{pid}/cmdline")
    return path.read_bytes() if path.exists() else b""


@pytest.mark.slow  # two sweep invocations of 12 runs and a driver subprocess: ~1-2 minutes
def test_kill_9_of_the_driver_then_rerun_gives_every_run_exactly_once(workdir, capfd):
    folder, uri = workdir
    path = write_sweep(folder, "killed", seeds=6, strategies=["random"])
    command = [sys.executable, "-m", "benchmark", "--tracking-uri", uri, "sweep", str(path)]
    driver = subprocess.Popen([*command, "--workers", "2"], stderr=subprocess.PIPE, text=True)
    client = MlflowClient(uri)
    before = pd.DataFrame()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if client.get_experiment_by_name("killed") is None:
            continue
        before = runs_of(uri, "killed")
        statuses = before[before["role"] == "child"]["status"].tolist()
        if "FINISHED" in statuses and "RUNNING" in statuses:
            break
    assert driver.poll() is None, driver.stderr.read()
    workers = _children_of(driver.pid)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    for _ in range(50):  # the pool's workers notice their driver is gone and exit
        if not any(_alive(pid) for pid in workers):
            break
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers)

    finished_before = before[(before["role"] == "child") & (before["status"] == "FINISHED")]
    after_kill = runs_of(uri, "killed").set_index("run_id")
    running = after_kill[(after_kill["role"] == "child") & (after_kill["status"] == "RUNNING")]
    assert len(running) >= 1, "the killed driver left runs that never finished"

    assert main(["--tracking-uri", uri, "sweep", str(path), "--workers", "2"]) == 0
    capfd.readouterr()
    final = runs_of(uri, "killed").set_index("run_id")
    # The runs that were running when the driver died are KILLED, never FINISHED.
    assert set(final.loc[running.index, "status"]) == {"KILLED"}
    parents = final[final["role"] == "parent"].sort_values("status")
    assert list(parents["status"]) == ["FINISHED", "KILLED"]
    children = final[final["role"] == "child"]
    done = children[children["status"] == "FINISHED"]
    # Every (algorithm, seed) of the grid finished exactly once; earlier results were kept.
    assert len(done) == 12 and done["config_hash"].is_unique
    assert set(finished_before["run_id"]) <= set(done.index)
    table = pd.read_csv(folder / "results" / "killed.csv")
    per_setting = table[(table["scope"] == "setting") & (table["statistic"] == "total_reward")]
    assert sorted(per_setting["algorithm"]) == ["lstm-a2c", "random"]
    assert set(per_setting["n"]) == {6}


@pytest.mark.slow  # a sweep driver subprocess: ~1 minute
def test_ctrl_c_marks_running_runs_killed_and_leaves_no_process(workdir):
    folder, uri = workdir
    path = write_sweep(folder, "interrupted", seeds=6, strategies=[])
    command = [sys.executable, "-m", "benchmark", "--tracking-uri", uri, "sweep", str(path)]
    log = folder / "driver.log"
    driver = subprocess.Popen(
        [*command, "--workers", "2"],
        stderr=log.open("w"),
        start_new_session=True,  # its own process group, as a terminal's foreground job
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 240
    while "[1/6]" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = _children_of(driver.pid)
    os.killpg(driver.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
    assert driver.wait(timeout=60) == 130
    assert "interrupted" in log.read_text()
    assert not any(_alive(pid) for pid in workers)
    runs = runs_of(uri, "interrupted")
    assert runs[runs["role"] == "parent"]["status"].tolist() == ["KILLED"]
    statuses = runs[runs["role"] == "child"]["status"]
    assert "RUNNING" not in set(statuses) and "KILLED" in set(statuses)


@pytest.mark.slow  # two sweep invocations: ~1 minute
def test_a_failed_run_is_recorded_and_retried_while_finished_ones_are_kept(
    workdir, capfd, monkeypatch
):
    folder, uri = workdir
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    failing = "failing_algorithm:FailingA2C"
    path = write_sweep(folder, "failing", algorithms=["lstm-a2c", failing], strategies=["random"])
    assert main(["--tracking-uri", uri, "sweep", str(path), "--workers", "2"]) == 1
    out, err = capfd.readouterr()
    assert "FAILED: RuntimeError: deliberate failure in training_step" in err
    assert "| lstm-a2c | learned | 2 |" in out and failing not in out
    runs = runs_of(uri, "failing")
    client = MlflowClient(uri)
    failed = runs[runs["status"] == "FAILED"]
    assert sorted(failed["role"]) == ["child", "child", "parent"]
    for run_id in failed[failed["role"] == "child"]["run_id"]:
        assert "deliberate failure" in client.get_run(run_id).data.tags["metarl.error"]

    assert main(["--tracking-uri", uri, "sweep", str(path), "--workers", "2"]) == 1
    assert "4 already finished, 2 to run" in capfd.readouterr().err
    runs = runs_of(uri, "failing")
    children = runs[runs["role"] == "child"]
    assert (children["status"] == "FINISHED").sum() == 4 and (
        children["status"] == "FAILED"
    ).sum() == 4


def test_a_ledger_carries_the_resume_to_a_fresh_store_on_another_machine(workdir, capfd):
    folder, uri = workdir
    path = write_sweep(folder, "carried")
    ledger = folder / "ledgers" / "carried.csv"  # its folder does not exist yet
    args = ["sweep", str(path), "--workers", "1", "--ledger", str(ledger)]
    assert main(["--tracking-uri", uri, *args]) == 0
    first = read_records([ledger])
    children = runs_of(uri, "carried").query("role == 'child'")
    assert len(first) == 6 and set(first["run_id"]) == set(children["run_id"])

    # Another machine: a fresh store, the committed ledger less one run.
    dropped = (first["algorithm"] == "lstm-a2c") & (first["seed"] == 1)
    write_records(ledger, first[~dropped])
    other = folder / "other"
    other.mkdir()
    uri2 = fresh_store(other)
    capfd.readouterr()
    assert main(["--tracking-uri", uri2, *args]) == 0
    err = capfd.readouterr().err
    assert "5 already finished (5 in the ledger" in err and "1 to run" in err
    trained = runs_of(uri2, "carried").query("role == 'child'")
    assert list(trained["algorithm"]) == ["lstm-a2c"] and list(trained["seed"]) == ["1"]
    merged = read_records([ledger])
    assert len(merged) == 6 and trained["run_id"].item() in set(merged["run_id"])
    kept = merged[merged["run_id"] != trained["run_id"].item()]
    assert set(kept["run_id"]) == set(first[~dropped]["run_id"])

    # The dry run costs only what the ledger lacks.
    assert main(["sweep", str(path), "--dry-run", "--ledger", str(ledger)]) == 0
    out = capfd.readouterr().out
    assert "sweep carried: 0 runs" in out and "6 of its runs are in the ledger" in out

    # A third machine, the ledger whole: nothing trains, and the table is the ledger's.
    third = folder / "third"
    third.mkdir()
    uri3 = fresh_store(third)
    assert main(["--tracking-uri", uri3, *args]) == 0
    out, err = capfd.readouterr()
    assert "6 already finished (6 in the ledger" in err and "0 to run" in err
    assert runs_of(uri3, "carried").query("role == 'child'").empty
    assert f"metarl-bench table --from {ledger}" in out and "| lstm-a2c | learned | 2 |" in out


def test_a_ledger_takes_the_runs_an_earlier_invocation_left_only_in_the_store(workdir, capfd):
    folder, uri = workdir
    path = write_sweep(folder, "late")
    assert main(["--tracking-uri", uri, "sweep", str(path), "--workers", "1"]) == 0
    ledger = folder / "late.csv"
    capfd.readouterr()
    args = ["sweep", str(path), "--workers", "1", "--ledger", str(ledger)]
    assert main(["--tracking-uri", uri, *args]) == 0
    err = capfd.readouterr().err
    assert "6 already finished (6 in the ledger" in err and "6 of them merged into it" in err
    children = runs_of(uri, "late").query("role == 'child'")
    assert set(read_records([ledger])["run_id"]) == set(children["run_id"])


def test_a_ledger_that_is_not_run_records_is_one_line_exit_2_and_starts_nothing(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path, "badledger")
    ledger = tmp_path / "notes.csv"
    ledger.write_text("a,b\n1,2\n")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["--tracking-uri", uri, "sweep", str(path), "--ledger", str(ledger)]) == 2
    err = capsys.readouterr().err
    assert "notes.csv lack the columns" in err and len(err.strip().splitlines()) == 1
    assert ledger.read_text() == "a,b\n1,2\n"
    assert not (tmp_path / "mlflow.db").exists() and _live_children() == []
