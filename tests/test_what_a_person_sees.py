"""What a person sees: ``list``'s parameters, a run's progress lines and the MLflow experiment."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import subprocess
import sys
import types

import pytest
import torch
from rich.console import Console

from benchmark.cli import LIST_WIDTH, main
from benchmark.run.progress import INTERVAL_ENV, RunProgress
from benchmark.run.tracking import EXPERIMENT_KIND_TAG as KIND
from benchmark.run.tracking import ensure_experiment
from tasks import TASKS, ConfigError


def family_lines(out: str) -> dict[str, str]:
    """``list``'s task section: each family's parameter text (continuation lines joined)."""
    families: dict[str, str] = {}
    name = None
    for line in out.split("tasks (", 1)[1].splitlines()[1:]:
        if not line.startswith("   "):
            name, _, line = line.strip().partition(" ")
        families[name] = families.get(name, "") + " " + line.strip()
    return families


def test_list_shows_readable_defaults_and_the_choices_of_categorical_parameters(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "MISSING" not in out and "object at 0x" not in out
    assert all(len(line) <= LIST_WIDTH for line in out.splitlines()[2:])
    families = family_lines(out)
    assert set(families) == set(TASKS)
    assert "m_range=[0.5, 1.5]," in families["pendulum-params"]
    assert "gravity_range=[7.35, 12.25]," in families["acrobot-params"]
    assert "difficulty=uniform {uniform,easy,medium,hard}," in families["dependent-bandit"]
    assert "book_or_nips=book {book,nips}" in families["acrobot-params"]
    assert "dtype=float32 {float32,float64}," in families["cartpole-params"]
    assert "max_steps=null," in families["maze"]


@pytest.mark.parametrize("name", sorted(TASKS))
def test_the_listed_choices_are_exactly_what_the_family_accepts(name, capsys):
    main(["list"])
    listed = family_lines(capsys.readouterr().out)[name]
    config = TASKS[name].Config
    for spec in dataclasses.fields(config):
        shown = re.search(rf"\b{spec.name}=\S+ \{{([^}}]*)\}}", listed)
        choices = spec.metadata.get("choices")
        assert (shown is None) == (choices is None), (name, spec.name)
        if choices is None:
            continue
        assert shown.group(1).split(",") == list(choices)
        for value in choices:
            assert getattr(config(**{spec.name: value}), spec.name) == value
        with pytest.raises(ConfigError, match=rf"task.{spec.name} must be one of "):
            config(**{spec.name: "not-a-choice"})


PROGRESS_LINE = re.compile(
    r"^run env steps (?P<steps>[\d,]+)/(?P<budget>[\d,]+) \((?P<percent>\d+)%\) \| "
    r"(?P<rate>[\d,]+) steps/s \| trial return (?P<ret>\S+) \| elapsed \d+:\d\d \| "
    r"ETA (?P<eta>\d+:\d\d|\?)$"
)


def test_a_non_interactive_run_prints_env_steps_against_the_budget(tracking_uri, tmp_path):
    env = {**os.environ, INTERVAL_ENV: "0.2"}
    command = [sys.executable, "-m", "benchmark", "run", "lstm-a2c", "bernoulli-bandit"]
    command += ["trainer.env_steps=20000", "eval.trials=50"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Epoch" not in done.stderr and "it/s" not in done.stderr
    lines = [PROGRESS_LINE.match(line) for line in done.stderr.splitlines()]
    lines = [match for match in lines if match]
    assert len(lines) >= 2, done.stderr
    steps = [int(match["steps"].replace(",", "")) for match in lines]
    assert steps == sorted(steps) and steps[-1] >= 20_000
    assert {match["budget"] for match in lines} == {"20,000"}
    assert lines[-1]["percent"] == "100" and lines[-1]["eta"] == "0:00"
    assert all(int(match["rate"].replace(",", "")) > 0 for match in lines)
    assert float(lines[-1]["ret"]) > 0  # a bandit trial's return: pulls rewarded 0 or 1
    from mlflow.tracking import MlflowClient

    [experiment] = MlflowClient(tracking_uri).search_experiments(
        filter_string="name = 'metarl-bench'"
    )
    assert experiment.tags[KIND] == "custom_model_development"


def test_on_a_terminal_the_run_progress_is_a_live_bar(monkeypatch):
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160)
    callback = RunProgress(1000, console=console)
    module = types.SimpleNamespace(env_steps=torch.tensor(200))
    callback.on_train_start(None, module)
    batch = {"completed_return": torch.tensor(9.0), "completed_trials": torch.tensor(2.0)}
    module.env_steps += 300
    monkeypatch.setattr(callback, "shown", -1e9)  # as if the last refresh was long ago
    callback.on_train_batch_end(None, module, None, batch, 0)
    assert callback.progress is not None and callback.trial_return == 4.5
    module.env_steps += 500
    callback.on_train_end(None, module)
    text = out.getvalue()
    assert callback.progress is None and "run env steps" not in text  # no plain lines
    assert "env steps 1,000/1,000 (100%)" in text and "trial return 4.5" in text


def test_the_progress_text_counts_rate_and_eta_from_the_steps_of_this_process():
    callback = RunProgress(10_000, interval=60, console=Console(file=io.StringIO()))
    callback.start_steps = 4_000  # a resumed run
    text = callback.describe(6_000, elapsed=2.0)
    assert text.startswith("env steps 6,000/10,000 (60%) | 1,000 steps/s | trial return n/a")
    assert text.endswith("elapsed 0:02 | ETA 0:04")
    assert callback.describe(4_000, elapsed=0.0).endswith("ETA ?")


def test_the_suites_experiments_are_tagged_as_model_training_for_the_mlflow_ui(tracking_uri):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    created = ensure_experiment(tracking_uri, "fresh")
    older = client.create_experiment("older")  # as an earlier version of the suite made it
    inferred = client.create_experiment("inferred", tags={KIND: "genai_development_inferred"})
    chosen = client.create_experiment("chosen", tags={KIND: "genai_development"})
    for name in ("older", "inferred", "chosen"):
        ensure_experiment(tracking_uri, name)

    def kind(experiment_id: str) -> str | None:
        return client.get_experiment(experiment_id).tags.get(KIND)

    assert kind(created) == kind(older) == kind(inferred) == "custom_model_development"
    assert kind(chosen) == "genai_development"  # a kind chosen in the UI stays
    assert ensure_experiment(tracking_uri, "fresh") == created
