"""What a person sees: ``list``'s parameters, a run's progress lines and the MLflow experiment."""

from __future__ import annotations

import dataclasses
import re

import pytest

from benchmark.cli import LIST_WIDTH, main
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
