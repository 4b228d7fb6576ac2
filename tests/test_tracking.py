"""Concurrent first use of a fresh sqlite store (two `metarl-bench run` at once)."""

from __future__ import annotations

import subprocess
import sys

from mlflow.tracking import MlflowClient

SCRIPT = """
import sys
from benchmark.run.tracking import make_logger
logger = make_logger(sys.argv[1], "race", "run", {})
logger.end_run("FINISHED")
"""


def test_processes_opening_a_fresh_store_at_once_do_not_corrupt_it(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    processes = [
        subprocess.Popen([sys.executable, "-c", SCRIPT, uri], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [p.communicate(timeout=300)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], errors
    experiment = MlflowClient(uri).get_experiment_by_name("race")
    runs = MlflowClient(uri).search_runs([experiment.experiment_id])
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}
