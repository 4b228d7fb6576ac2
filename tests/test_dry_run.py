"""``sweep --dry-run`` (the grid and its cost, nothing started), ``requires`` on a sweep's task
entries, and ``perf --families`` (env steps per second per family, results/throughput.csv)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import benchmark.sweeps.grid
from benchmark.cli import main
from benchmark.studies.perf_families import THROUGHPUT_COLUMNS, merge_throughput
from benchmark.sweeps.grid import load_sweep
from tasks import ConfigError

SWEEP = """name: tiny
seeds: 3
algorithms: [rl2, lstm-a2c]
strategies: [random]
tasks:
  - name: cartpole-params
    grid: {max_steps: [100, 200]}
overrides:
  trainer.env_steps: 720000
"""


def _write_rates(folder: Path, rows: list[dict[str, str]]) -> None:
    (folder / "results").mkdir()
    with (folder / "results" / "throughput.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, THROUGHPUT_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({"commit": "abc", "date": "2026-12-07", "cpu_model": "x", **row})


def test_a_dry_run_prints_the_grid_and_its_cost_and_starts_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(SWEEP)
    rate = {"algorithm": "rl2", "family": "cartpole-params", "env_steps_per_second": "2000"}
    _write_rates(tmp_path, [{**rate, "setting": "pair defaults: batch=256"}])
    assert main(["sweep", "tiny.yaml", "--dry-run", "--tracking-uri", "sqlite:///x.db"]) == 0
    out = capsys.readouterr().out
    assert "sweep tiny: 18 runs, seeds 0..2; a dry run: nothing is started" in out
    # rl2: 2 settings x 3 seeds x 720,000 steps at 2,000 steps/s = 0.6 CPU-hours.
    assert "| learned | rl2 | cartpole-params | 2 | 6 | 4,320,000 | 2,000 | 0.60 |" in out
    assert "| learned | lstm-a2c | cartpole-params | 2 | 6 | 4,320,000 | unmeasured |" in out
    assert "| classical | random | cartpole-params | 2 | 6 | - | - | - |" in out
    assert "total: 18 runs, 8,640,000 training env steps; 0.6 CPU-hours" in out
    assert "note: 1 learned rows are unmeasured" in out and "lstm-a2c/cartpole-params" in out
    assert sorted(path.name for path in tmp_path.iterdir()) == ["results", "tiny.yaml"]


def test_a_rate_measured_at_another_shape_is_stale_and_left_out(tmp_path, monkeypatch, capsys):
    """A rate whose batch and hidden size no run of the row uses (a pair's defaults changed after
    the measurement) is shown as stale and kept out of the CPU-hours; a matching one counts."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(SWEEP + "  algo.batch_size: 64\n  algo.hidden_size: 32\n")
    old = "pair defaults: batch=16 hidden=32 env_steps/update=3200 threads=1"
    current = "pair defaults: batch=64 hidden=32 env_steps/update=12800 threads=1"
    rows = [
        {"algorithm": "rl2", "family": "cartpole-params", "setting": old},
        {"algorithm": "lstm-a2c", "family": "cartpole-params", "setting": current},
    ]
    _write_rates(tmp_path, [{**row, "env_steps_per_second": "2000"} for row in rows])
    assert main(["sweep", "tiny.yaml", "--dry-run", "--tracking-uri", "sqlite:///x.db"]) == 0
    out = capsys.readouterr().out
    assert "| learned | rl2 | cartpole-params | 2 | 6 | 4,320,000 | stale | stale |" in out
    assert "| learned | lstm-a2c | cartpole-params | 2 | 6 | 4,320,000 | 2,000 | 0.60 |" in out
    assert "0.6 CPU-hours over the 1 measured rows" in out
    assert (
        "note: rl2/cartpole-params is not in the CPU-hours (4,320,000 env steps): its rate was "
        "measured at batch=16 hidden=32, its runs use batch=64 hidden=32; re-measure with "
        "'metarl-bench perf --families cartpole-params --algorithms rl2'"
    ) in out
    assert "unmeasured" not in out


def test_a_dry_run_refuses_a_bad_sweep_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text(SWEEP.replace("max_steps", "max_stepz"))
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(["sweep", "bad.yaml", "--dry-run"]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "max_stepz" in err, err


def test_a_task_entry_that_requires_a_missing_extra_is_left_out_with_a_note(tmp_path, monkeypatch):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        "seeds: 2\nalgorithms: [rl2]\ntasks:\n  - {name: two-step}\n"
        "  - {name: hopper-params, requires: mujoco}\n"
    )
    installed = load_sweep(str(sweep), [])  # MuJoCo is installed here
    assert {job.task for job in installed.jobs} == {"two-step", "hopper-params"}
    assert installed.notes == []

    def missing(task: str) -> None:
        raise ConfigError(f"task '{task}' needs MuJoCo, which is not installed")

    monkeypatch.setitem(benchmark.sweeps.grid.EXTRAS, "mujoco", missing)
    without = load_sweep(str(sweep), [])
    assert {job.task for job in without.jobs} == {"two-step"}
    assert without.notes == [
        "note: hopper-params is left out: task 'hopper-params' needs MuJoCo, which is not installed"
    ]
    sweep.write_text(sweep.read_text().replace("requires: mujoco", "requires: cuda"))
    with pytest.raises(ConfigError, match="tasks.hopper-params.requires must be one of mujoco"):
        load_sweep(str(sweep), [])


def test_mujoco_sweep_jobs_of_twin_families_stay_distinct(tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        "seeds: 2\nstrategies: [random]\ntasks:\n  - {name: hopper-params, requires: mujoco}\n"
        "  - {name: halfcheetah-params, requires: mujoco}\n"
    )
    jobs = load_sweep(str(sweep), []).jobs
    assert sorted(job.task for job in jobs) == ["halfcheetah-params"] * 2 + ["hopper-params"] * 2


def test_a_new_rate_at_the_pair_defaults_replaces_one_at_former_defaults():
    def row(family: str, setting: str, rate: str) -> dict[str, str]:
        return {"algorithm": "rl2", "family": family, "setting": setting, "rate": rate}

    old = [
        row("maze", "pair defaults: batch=16 hidden=128", "1"),
        row("maze", "quick: batch=16 hidden=128", "2"),
        row("two-step", "pair defaults: batch=128 hidden=64", "3"),
    ]
    merged = merge_throughput(old, [row("maze", "pair defaults: batch=64 hidden=128", "4")])
    assert [(r["family"], r["rate"]) for r in merged] == [
        ("maze", "4"),
        ("maze", "2"),
        ("two-step", "3"),
    ]


def test_perf_families_writes_a_row_per_family_to_throughput_and_perf_md(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_rates(tmp_path, [])
    (tmp_path / "results" / "perf.md").write_text("# perf\n\nmeasured by hand\n")
    for _ in range(2):  # a second measurement replaces the first
        assert main(["perf", "--families", "cartpole-params", "--quick"]) == 0
    with (tmp_path / "results" / "throughput.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1
    row = rows[0]
    assert (row["algorithm"], row["family"]) == ("rl2", "cartpole-params")
    assert (
        row["setting"].startswith("quick: batch=16") and "env_steps/update=6400" in row["setting"]
    )
    assert float(row["env_steps_per_second"]) > 0 and row["cpu_model"] and row["date"]
    text = (tmp_path / "results" / "perf.md").read_text()
    assert text.startswith("# perf\n\nmeasured by hand\n")
    assert text.count("## Env steps per second per family") == 1
    assert "| rl2 | cartpole-params | quick: batch=16" in text


def test_perf_families_refuses_an_unknown_family(capsys):
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(["perf", "--families", "no-such-family", "--quick"]))
    assert exit_info.value.code == 2
    assert "unknown task 'no-such-family'; valid tasks:" in capsys.readouterr().err


def test_perf_families_measures_the_named_algorithms_and_refuses_unknown_ones(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    _write_rates(tmp_path, [])
    args = ["perf", "--families", "bernoulli-bandit", "--quick", "--algorithms"]
    assert main([*args, "lstm-a2c", "a2c"]) == 0
    with (tmp_path / "results" / "throughput.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["algorithm"] for row in rows) == ["a2c", "lstm-a2c"]
    assert all(float(row["env_steps_per_second"]) > 0 for row in rows)
    capsys.readouterr()
    assert main([*args, "ppo"]) == 2
    assert "unknown algorithm 'ppo'; valid algorithms: all, " in capsys.readouterr().err
    assert main(["perf", "--algorithms", "rl2"]) == 2
    assert "--algorithms needs --families" in capsys.readouterr().err
