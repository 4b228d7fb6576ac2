"""Bad input, property-based: random overrides for ``run``, ``evaluate`` and ``sweep``.

Every input either is accepted, and then the config it resolves to is one the schema allows (each
field of the type its dataclass declares, each section's range checks passing, seeds in range), or
is rejected with exit status 2, one line on stderr, no training started and nothing recorded.
Training and evaluation are replaced by recorders, so accepted inputs cost no training.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import benchmark.run.policies
import benchmark.run.runner
import benchmark.sweeps.launchers
from baselines import get_algorithm_class
from baselines.strategies import get_strategy
from benchmark.cli import main
from benchmark.run.config import SEED_MAX, EvalConfig, TrainerConfig, load_run_config
from benchmark.sweeps.grid import load_sweep
from tasks import ConfigError, get_task_class

ALGOS = ("lstm-a2c", "a2c", "rl2")
TASKS = ("bernoulli-bandit", "dependent-bandit", "tabular-mdp", "cartpole-params")
STRATEGIES = ("random", "ucb1", "eps-greedy", "thompson", "oracle")
SPECIAL_VALUES = (
    "null", "true", "false", "abc", "[1, 2]", "[0.5, 1.5]", "[2, 1]", "{a: 1}", "", "1e3", "0x10",
    "-0", ".5", "inf", "nan", "-1", "4294967295", "4294967296", "easy", "uniform", "float64",
    "nips", "adam", "linear", "${seed}", "${nope}", "${oc.env:HOME}", "'5'", "[", "{", "a=b",
)  # fmt: skip
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

values = st.one_of(
    st.integers(-(2**40), 2**40).map(str),
    st.integers(0, 100).map(str),
    st.floats().map(repr),
    st.sampled_from(SPECIAL_VALUES),
    st.text(st.characters(codec="ascii", categories=("L", "N", "P", "S", "Zs")), max_size=8),
)
names = st.text("abcdefghijklmnopqrstuvwxyz_0123456789.", min_size=1, max_size=10)
sections = st.sampled_from(("", "algo.", "task.", "trainer.", "eval.", "strategy.", "task.x."))
garbage = st.text(max_size=12).filter(lambda s: not s.startswith("-") and "\0" not in s)


def overrides(schema_keys: list[str], max_size: int = 4) -> st.SearchStrategy[list[str]]:
    """Lists of ``key=value`` strings: schema keys or random ones, typed or garbage values."""
    key = st.one_of(st.sampled_from(schema_keys), st.builds("{}{}".format, sections, names))
    item = st.one_of(st.builds("{}={}".format, key, values), garbage)
    return st.lists(item, max_size=max_size)


def schema_keys(prefix: str, *config_classes: type) -> list[str]:
    return [f"{prefix}{f.name}" for cls in config_classes for f in dataclasses.fields(cls)]


def conforms(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the declared type ``hint`` (annotations not listed pass)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool or hint is str:
        return isinstance(value, hint)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, list) and all(conforms(v, args[0]) for v in value)
    return True


def assert_section_conforms(config_class: type, values_: dict[str, Any]) -> None:
    hints = typing.get_type_hints(config_class)
    for f in dataclasses.fields(config_class):
        assert conforms(values_[f.name], hints[f.name]), (f.name, values_[f.name], hints[f.name])
    config_class(**values_)  # the dataclass's own range checks


def assert_seed(value: Any) -> None:
    assert isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= SEED_MAX


def assert_spec_conforms(spec) -> None:
    assert_seed(spec.config.seed)
    assert_section_conforms(get_algorithm_class(spec.algo_name).Config, spec.section("algo"))
    assert_section_conforms(get_task_class(spec.task_name).Config, spec.section("task"))
    assert_section_conforms(TrainerConfig, spec.section("trainer"))
    assert_section_conforms(EvalConfig, spec.section("eval"))


def invoke(argv: list[str]) -> tuple[int, str]:
    """``metarl-bench argv`` in this process: its exit status and its stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code
    return code, err.getvalue()


def assert_rejected(code: int, err: str, started: list, where: Path) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert not started
    assert not (where / "mlflow.db").exists() and not (where / "mlartifacts").exists()


def recording_pool(started: list[Any]) -> type:
    """A stand-in for the sweep's worker pool: records its start, refuses any job."""

    class Pool:
        def __init__(self, workers=None):
            started.append("pool")

        def submit(self, job):
            raise AssertionError("a rejected sweep submitted a job")

        def close(self, cancel):
            pass

    return Pool


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (
            ["run", "a2c", "bernoulli-bandit", "seed=-1"],
            "seed must be an integer in [0, 4294967295]",
        ),
        (["run", "a2c", "bernoulli-bandit", "seed=1.5"], "seed must be an integer in [0, "),
        (["run", "a2c", "bernoulli-bandit", "seed=4294967296"], "got 4294967296"),
        (["run", "a2c", "bernoulli-bandit", "seed=abc"], "got 'abc'"),
        (
            ["run", "a2c", "bernoulli-bandit", "eval.seed=-2"],
            "eval.seed must be an integer in [0, ",
        ),
        (["run", "a2c", "bernoulli-bandit", "eval.seed=x"], "eval.seed must be an integer in [0, "),
        (["evaluate", "random", "bernoulli-bandit", "--seed", "-1"], "--seed: must be an integer"),
        (["evaluate", "random", "bernoulli-bandit", "--seed", "2.5"], "in [0, 4294967295]"),
        (["reproduce", "rl2-table1", "--seed", "4294967296"], "--seed: must be an integer"),
        (["sweep", "quick", "seeds=[0, -1]"], "each of seeds [0, -1] must be an integer in [0, "),
        (["sweep", "quick", "seeds=[true, 2]"], "must be an integer in [0, 4294967295], got True"),
        (["sweep", "quick", "seeds=1001"], "at least 2 seeds and at most 1000"),
        (["sweep", "quick", "seeds=1.5"], "a list of seeds, each an integer in [0, 4294967295]"),
    ],
)
def test_a_bad_seed_is_one_line_naming_the_range_and_records_nothing(
    argv, needle, tracking_uri, monkeypatch, tmp_path
):
    started: list[Any] = []  # training is real here: a bad seed must stop before MLflow opens
    monkeypatch.setattr(benchmark.sweeps.launchers, "LocalLauncher", recording_pool(started))
    code, err = invoke(argv)
    assert started == ["pool"] if argv[0] == "sweep" else not started
    assert_rejected(code, err, [], tmp_path)
    assert needle in err, err


@pytest.fixture
def recorders(tracking_uri, monkeypatch):
    """Training, evaluation and worker pools replaced by recorders of what they were given."""
    started: list[Any] = []

    def train(spec, *args, **kwargs):
        started.append(spec)
        return {"run_id": "recorded"}

    def evaluate(policy, family, trials, seed, device="cpu"):
        started.append((family, trials, seed))
        return types.SimpleNamespace(
            mean_total_reward=0.0, stderr=0.0, normalized_score=0.0, regret=0.0,
            per_episode_returns=[], success_rate=None, behaviour=None,
        )  # fmt: skip

    monkeypatch.setattr(benchmark.run.runner, "train_and_evaluate", train)
    monkeypatch.setattr(benchmark.run.policies, "evaluate_policy", evaluate)
    tuned = types.SimpleNamespace(tuned={})
    monkeypatch.setattr(benchmark.run.policies, "tune_strategy", lambda *a, **k: tuned)
    monkeypatch.setattr(benchmark.sweeps.launchers, "LocalLauncher", recording_pool(started))
    return started


@st.composite
def run_argv(draw) -> tuple[str, str, list[str]]:
    algo, task = draw(st.sampled_from(ALGOS)), draw(st.sampled_from(TASKS))
    keys = ["seed", "eval.seed", *schema_keys("trainer.", TrainerConfig)]
    keys += schema_keys("algo.", get_algorithm_class(algo).Config)
    keys += schema_keys("task.", get_task_class(task).Config)
    return algo, task, draw(overrides(keys))


@SETTINGS
@given(case=run_argv())
def test_run_accepts_only_what_the_schema_allows(case, recorders, tmp_path):
    algo, task, items = case
    recorders.clear()
    code, err = invoke(["run", algo, task, *items])
    event("accepted" if code == 0 else "rejected")
    if code == 0:
        assert len(recorders) == 1
        assert_spec_conforms(recorders[0])
    else:
        assert_rejected(code, err, recorders, tmp_path)


@st.composite
def evaluate_argv(draw) -> list[str]:
    strategy, task = draw(st.sampled_from(STRATEGIES)), draw(st.sampled_from(TASKS))
    config = get_strategy(strategy).config
    keys = schema_keys("task.", get_task_class(task).Config)
    keys += schema_keys("strategy.", config) if config is not None else []
    argv = ["evaluate", strategy, task, *draw(overrides(keys))]
    for option in ("--seed", "--trials", "--tune-trials"):
        if draw(st.booleans()):
            argv += [option, draw(st.one_of(values, st.integers(-5, 2**33).map(str)))]
    return argv


@SETTINGS
@given(argv=evaluate_argv())
def test_evaluate_accepts_only_what_the_schema_allows(argv, recorders, tmp_path):
    recorders.clear()
    code, err = invoke(argv)
    event("accepted" if code == 0 else "rejected")
    if code == 0:
        [(family, trials, seed)] = recorders
        assert_section_conforms(type(family.config), dataclasses.asdict(family.config))
        assert isinstance(trials, int) and trials >= 1
        assert_seed(seed)
    else:
        assert_rejected(code, err, recorders, tmp_path)


SWEEP = """\
name: props
seeds: 2
algorithms: [lstm-a2c]
strategies: [random]
tasks:
  - name: bernoulli-bandit
    variants: [{arms: 2, pulls: 5}]
"""


@st.composite
def sweep_overrides(draw) -> list[str]:
    keys = ["seeds", "name", "experiment", "eval.seed", "eval.trials"]
    keys += schema_keys("trainer.", TrainerConfig)
    keys += schema_keys("task.", get_task_class(TASKS[0]).Config)
    items = draw(overrides(keys, max_size=2))
    if draw(st.booleans()):
        seeds = st.lists(st.integers(-3, SEED_MAX + 3), max_size=4).map(str)
        counts = st.one_of(st.integers(-3, 12), st.sampled_from([1001, 10**12])).map(str)
        items.append(f"seeds={draw(st.one_of(seeds, counts))}")
    return items


@SETTINGS
@given(items=sweep_overrides())
def test_sweep_accepts_only_what_the_schema_allows(items, recorders, tmp_path):
    path = tmp_path / "props.yaml"
    path.write_text(SWEEP)
    try:
        sweep = load_sweep(str(path), items)
    except ConfigError:
        event("rejected")
        recorders.clear()
        code, err = invoke(["sweep", str(path), *items, "--workers", "1"])
        assert_rejected(code, err, [r for r in recorders if r != "pool"], tmp_path)
        return
    event("accepted")
    assert 2 <= len(sweep.seeds) <= 1000
    for seed in sweep.seeds:
        assert_seed(seed)
    for job in sweep.jobs:
        assert_seed(job.seed)
        assert_seed(job.eval_seed)
        assert_section_conforms(get_task_class(job.task).Config, job.task_params)
    learned = next(job for job in sweep.jobs if job.kind == "learned")
    assert_spec_conforms(load_run_config(learned.name, learned.task, learned.overrides))
