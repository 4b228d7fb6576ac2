"""The Ray launcher on a real local Ray runtime gives the same table as the local process pool."""

from __future__ import annotations

import pandas as pd
import pytest
from store_support import fresh_store
from test_sweep import runs_of, write_sweep

from benchmark.cli import main

pytest.importorskip("ray")

pytestmark = pytest.mark.slow


def test_ray_and_local_launchers_give_the_same_table(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    uri = fresh_store(tmp_path)
    path = write_sweep(tmp_path, "same")
    tables = {}
    for launcher in ("local", "ray"):
        experiment = f"same-{launcher}"
        args = ["--tracking-uri", uri, "sweep", str(path), f"experiment={experiment}"]
        assert main([*args, "--launcher", launcher, "--workers", "2"]) == 0
        err = capfd.readouterr().err
        assert "0 already finished, 6 to run" in err
        assert ("Ray tasks on a local Ray runtime" in err) == (launcher == "ray")
        runs = runs_of(uri, experiment)
        assert set(runs["status"]) == {"FINISHED"} and (runs["role"] == "child").sum() == 6
        table = pd.read_csv(tmp_path / "results" / "same.csv")
        tables[launcher] = table.sort_values(["setting", "algorithm", "statistic"])
    local, ray = (tables[k].reset_index(drop=True) for k in ("local", "ray"))
    assert len(local) == len(ray) > 0
    pd.testing.assert_frame_equal(local, ray, check_exact=False, rtol=1e-9)
    learned = local[(local["algorithm"] == "lstm-a2c") & (local["statistic"] == "total_reward")]
    assert learned["n"].item() == 2
