"""Loading a checkpoint never runs code: crafted files and unregistered classes are refused."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from benchmark.cli import main
from benchmark.run.checkpoints import read_checkpoint, write_checkpoint

FAST = ["task.arms=3", "task.pulls=5", "algo.batch_size=16", "trainer.env_steps=400"]
TASK = ["bernoulli-bandit", "task.arms=3", "task.pulls=5", "--trials", "50"]


class Payload:
    """Unpickling this creates ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def crafted_files(folder: Path, marker: Path) -> dict[str, Path]:
    """A bare malicious pickle and a real torch zip checkpoint with the payload inside."""
    bare = folder / "bare.ckpt"
    bare.write_bytes(pickle.dumps({"format": "metarl-bench/checkpoint-1", "x": Payload(marker)}))
    zipped = folder / "zipped.ckpt"
    torch.save({"format": "metarl-bench/checkpoint-1", "x": Payload(marker)}, zipped)
    return {"bare": bare, "zipped": zipped}


def test_the_payload_is_real(tmp_path):
    # Unpickled the unsafe way, each file does create the marker: the test below is not vacuous.
    marker = tmp_path / "pwned"
    files = crafted_files(tmp_path, marker)
    pickle.loads(files["bare"].read_bytes())
    assert marker.exists()
    marker.unlink()
    torch.load(files["zipped"], weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("kind", ["bare", "zipped"])
def test_evaluate_refuses_a_crafted_checkpoint_and_its_payload_never_runs(kind, tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = crafted_files(tmp_path, marker)[kind]
    assert main(["evaluate", str(path), *TASK]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "loads safely" in err
    assert not marker.exists()


def test_evaluate_refuses_a_crafted_checkpoint_logged_to_a_run(tracking_uri, tmp_path, capsys):
    marker = tmp_path / "pwned"
    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment("shared")
    run_id = client.create_run(experiment).info.run_id
    path = crafted_files(tmp_path, marker)["zipped"]
    final = tmp_path / "final.ckpt"
    path.rename(final)
    client.log_artifact(run_id, str(final), "checkpoints")
    capsys.readouterr()
    assert main(["evaluate", run_id, *TASK]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not marker.exists()


def trained_checkpoint(capsys) -> dict:
    assert main(["run", "lstm-a2c", "bernoulli-bandit", *FAST, "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_id"]
    final = next(Path("mlartifacts").glob(f"*/{run_id}/artifacts/checkpoints/final.ckpt"))
    return read_checkpoint(final)


def test_a_plugin_class_is_imported_only_when_named_on_the_command_line(
    tracking_uri, tmp_path, monkeypatch, capsys
):
    checkpoint = trained_checkpoint(capsys)
    marker = tmp_path / "imported"
    plugin = tmp_path / "plugin_pkg"
    plugin.mkdir()
    (plugin / "sneaky.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from baselines.lstm_a2c import LSTMA2C\n"
        "class Sneaky(LSTMA2C):\n    name = 'sneaky'\n"
    )
    monkeypatch.syspath_prepend(str(plugin))
    path = write_checkpoint({**checkpoint, "algorithm": "sneaky:Sneaky"}, tmp_path / "p.ckpt")

    assert main(["evaluate", str(path), *TASK]) == 2
    err = capsys.readouterr().err
    assert "--algorithm sneaky:Sneaky" in err and err.count("\n") == 1
    assert not marker.exists() and "sneaky" not in sys.modules

    assert main(["evaluate", str(path), *TASK, "--algorithm", "sneaky:Sneaky", "--json"]) == 0
    assert marker.exists()
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["trials"] == 50


def test_an_unregistered_algorithm_name_is_refused(tracking_uri, tmp_path, capsys):
    checkpoint = trained_checkpoint(capsys)
    path = write_checkpoint({**checkpoint, "algorithm": "no-such-algo"}, tmp_path / "u.ckpt")
    assert main(["evaluate", str(path), *TASK]) == 2
    err = capsys.readouterr().err
    assert "unknown algorithm 'no-such-algo'" in err and "lstm-a2c" in err
