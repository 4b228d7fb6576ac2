"""The command line takes overrides and options in any order, and shared options are one thing."""

from __future__ import annotations

import pytest

from benchmark.arguments import command_parsers, parse_arguments


@pytest.mark.parametrize(
    "orders",
    [
        (
            ["sweep", "quick", "--launcher", "ray", "seeds=2"],
            ["sweep", "quick", "seeds=2", "--launcher", "ray"],
            ["sweep", "--launcher", "ray", "quick", "seeds=2"],
        ),
        (
            ["run", "rl2", "bernoulli-bandit", "--json", "seed=3", "task.arms=5"],
            ["run", "--json", "rl2", "bernoulli-bandit", "seed=3", "task.arms=5"],
            ["run", "rl2", "bernoulli-bandit", "seed=3", "--json", "task.arms=5"],
        ),
        (
            ["evaluate", "ucb1", "bernoulli-bandit", "task.arms=5", "--trials", "10"],
            ["evaluate", "ucb1", "--trials", "10", "bernoulli-bandit", "task.arms=5"],
        ),
    ],
)
def test_overrides_and_options_parse_the_same_in_any_order(orders):
    parsed = [vars(parse_arguments(argv)) for argv in orders]
    assert all(args == parsed[0] for args in parsed)
    assert parsed[0].get("overrides")


def test_tracking_uri_goes_before_or_after_the_command():
    before = parse_arguments(["--tracking-uri", "http://h:1", "table"])
    after = parse_arguments(["table", "--tracking-uri", "http://h:1"])
    assert before.tracking_uri == after.tracking_uri == "http://h:1"


def test_every_command_declares_the_tracking_uri_option_from_one_place():
    for name, parser in command_parsers().items():
        flags = [a for a in parser._actions if "--tracking-uri" in a.option_strings]
        assert len(flags) == 1, name


def test_compare_and_table_from_take_their_options_in_any_order():
    orders = (
        [
            "compare",
            "lstm-a2c",
            "--seeds",
            "2",
            "--families",
            "bernoulli-bandit",
            "--format",
            "csv",
        ],
        [
            "compare",
            "--format",
            "csv",
            "--families",
            "bernoulli-bandit",
            "--seeds",
            "2",
            "lstm-a2c",
        ],
        [
            "compare",
            "--seeds",
            "2",
            "lstm-a2c",
            "--format",
            "csv",
            "--families",
            "bernoulli-bandit",
        ],
    )
    parsed = [vars(parse_arguments(argv)) for argv in orders]
    assert all(args == parsed[0] for args in parsed)
    assert parsed[0]["algo"] == "lstm-a2c" and parsed[0]["families"] == ["bernoulli-bandit"]
    assert parsed[0]["seeds"] == 2 and parsed[0]["against"] is None
    tables = (
        ["table", "--from", "a.csv", "b.csv", "--format", "csv"],
        ["table", "--format", "csv", "--from", "a.csv", "b.csv"],
    )
    parsed = [vars(parse_arguments(argv)) for argv in tables]
    assert parsed[0] == parsed[1] and parsed[0]["sources"] == ["a.csv", "b.csv"]
