"""Every key acts: over the whole registry, changing any config field from its default changes what
a run does, or the key is refused with a one-line ConfigError (exit status 2).

Algorithms train for a few updates on a tiny tabular MDP (no pair YAML applies to it, so the
resolved config is the dataclass defaults plus ``ALGO_CONTEXT``), from a fixed seed, once at the
defaults and once with one field changed; the trained parameters must differ. LSTM-A3C's
actor-learner loop runs in this process (one worker, no spawning). Families are fingerprinted by
their shape, a seeded trial-engine run with fixed actions, and their reference scores.

Every algorithm field needs two values in ``CANDIDATES`` or a reason in ``ALGO_EXCEPTIONS``; every
family field is changed by a generic rule (or ``FAMILY_CANDIDATES``) unless ``FAMILY_EXCEPTIONS``
gives a reason. A test of its own checks an exception's stated effect where that is cheap. A new
field with neither fails ``test_every_*_field_has_a_change_or_a_reason``.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
from dataclasses import fields
from typing import Any, NamedTuple

import pytest
import pytorch_lightning as pl
import torch
from run_support import fit_updates
from test_registry_gym import SMALL_PARAMS

from baselines import algorithm_names, get_algorithm_class
from baselines.actor_learner import ActorLearner, WorkerContext, make_shared_optimizer
from baselines.async_learner import WorkerPool
from benchmark.run.config import load_run_config
from benchmark.run.runner import MemoryLogger, build_module
from tasks import TASKS, ConfigError, TrialEngine, make_task, task_generator

# Algorithms -----------------------------------------------------------------------------------
ALGO_TASK = "tabular-mdp"
ALGO_CONTEXT = (
    "task.states=3",
    "task.actions=2",
    "task.horizon=3",
    "task.episodes=2",
    "algo.batch_size=8",
    "algo.hidden_size=8",
)
"""A 6-step trial of a 3-state MDP and a small network: a few updates take milliseconds."""
BATCHES = 2
"""Rollout batches per run: a schedule or a running moment acts from the second on."""

CANDIDATES: dict[str, tuple[Any, Any]] = {
    "batch_size": (6, 10),
    "hidden_size": (12, 16),
    "gamma": (0.5, 0.7),
    "lr": (0.05, 0.02),
    "optimizer": ("adam", "rmsprop"),
    "value_coef": (2.0, 1.0),
    "entropy_coef": (0.5, 0.25),
    "grad_clip": (1e-3, 1e-2),
    "policy_init_gain": (1.0, None),
    "lr_schedule": ("linear", "constant"),
    "normalize_advantages": (True, False),
    "rollout_steps": (4, 2),
    "cell": ("gru", "lstm"),
    "gae_lambda": (0.5, 0.7),
    "normalize_values": (True, False),
    "value_norm_decay": (0.5, 0.7),
    "clip": (1e-3, 1e-2),
    "epochs": (1, 3),
    "minibatches": (1, 4),
    "entropy_schedule": ("linear", "constant"),
}
"""Two values per algorithm field; a test sets whichever differs from the resolved default."""

REFUSED: dict[tuple[str, str], tuple[str, ...]] = {
    ("lstm-a2c", "value_norm_decay"): ("algo.normalize_values=true",),
    ("a2c", "value_norm_decay"): ("algo.normalize_values=true",),
    ("lstm-a3c", "value_norm_decay"): ("algo.normalize_values=true",),
}
"""(algorithm, field) refused away from its default unless these overrides come with it (it acts
only through them); the field must then act with them."""

ALGO_EXCEPTIONS: dict[str, str] = {
    "log_every": "changes only how often training metrics are logged, not the updates",
    "workers": "lstm-a3c's number of actor-learner processes (parallelism); checked as the "
    "worker pool's size, since spawning processes takes seconds",
    "worker_delays": "a test hook: worker i pauses between computing and applying each gradient, "
    "which changes timing only",
}
"""Fields that exist for a reason other than changing the updates, with that reason."""


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread, as a run has (``trainer.threads``): tiny ops on a shared machine are
    many times slower when threads wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _algorithm_fields() -> list[tuple[str, str]]:
    return [
        (name, field.name)
        for name in algorithm_names()
        for field in fields(get_algorithm_class(name).Config)
    ]


def _resolved(algo: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    return load_run_config(algo, ALGO_TASK, [*ALGO_CONTEXT, *extra]).section("algo")


def _changed(algo: str, key: str, extra: tuple[str, ...] = ()) -> str:
    """An override that sets ``algo.key`` away from its resolved value."""
    current = _resolved(algo, extra)[key]
    value = next(v for v in CANDIDATES[key] if v != current)
    return f"algo.{key}={'null' if value is None else value}"


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


class Trained(NamedTuple):
    """What a short run did: its final parameters (flattened) and how many metrics it logged."""

    parameters: torch.Tensor
    logged: int


def _train(algo: str, overrides: tuple[str, ...]) -> Trained:
    """``BATCHES`` updates through Lightning's Trainer, from seed 0."""
    spec = load_run_config(algo, ALGO_TASK, [*ALGO_CONTEXT, *overrides])
    logger = MemoryLogger()
    pl.seed_everything(0, verbose=False)
    module = build_module(spec)
    fit_updates(spec, module, BATCHES, logger)
    return Trained(_flat(module), len(logger.history))


def _a3c_context(module, budget: int) -> WorkerContext:
    optimizer = make_shared_optimizer(
        list(module.network.parameters()), module.cfg.optimizer, module.cfg.lr
    )
    delays = module.cfg.worker_delays
    return WorkerContext(
        index=0,
        seed=0,
        module=module,
        optimizer=optimizer,
        reports=queue.SimpleQueue(),
        start=threading.Event(),
        stop=threading.Event(),
        claimed=multiprocessing.Value("q", 0),
        applied=multiprocessing.Value("q", 0),
        budget=budget,
        parent_pid=os.getppid(),
        delay=float(delays[0]) if delays else 0.0,
    )


def _train_a3c(overrides: tuple[str, ...]) -> Trained:
    """``BATCHES`` updates of one actor-learner run in this process (nothing is logged)."""
    spec = load_run_config("lstm-a3c", ALGO_TASK, [*ALGO_CONTEXT, *overrides])
    torch.manual_seed(0)
    module = build_module(spec)
    ActorLearner(_a3c_context(module, BATCHES), seed=0).run()
    return Trained(_flat(module.network), 0)


_RUNS: dict[tuple[str, tuple[str, ...]], Trained] = {}


def trained(algo: str, overrides: tuple[str, ...] = ()) -> Trained:
    """:func:`_train` (or :func:`_train_a3c`), cached per (algorithm, overrides)."""
    key = (algo, overrides)
    if key not in _RUNS:
        _RUNS[key] = _train_a3c(overrides) if algo == "lstm-a3c" else _train(algo, overrides)
    return _RUNS[key]


def _differ(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape != b.shape or not torch.equal(a, b)


def test_every_algorithm_field_has_a_change_or_a_reason():
    missing = [
        f"{algo}: algo.{key}"
        for algo, key in _algorithm_fields()
        if key not in CANDIDATES and key not in ALGO_EXCEPTIONS
    ]
    assert not missing, (
        f"add a changed value to CANDIDATES or a reason to ALGO_EXCEPTIONS: {missing}"
    )


@pytest.mark.parametrize("algo", algorithm_names())
def test_runs_at_the_defaults_repeat_exactly(algo):
    """The comparisons below mean something only if a run is a function of its config."""
    first = trained(algo)
    _RUNS.pop((algo, ()))
    assert torch.equal(first.parameters, trained(algo).parameters)


@pytest.mark.parametrize(
    ("algo", "key"), [pair for pair in _algorithm_fields() if pair[1] not in ALGO_EXCEPTIONS]
)
def test_changing_an_algorithm_field_changes_the_trained_parameters(algo, key):
    if (algo, key) in REFUSED:
        with pytest.raises(ConfigError, match=f"algo.{key}"):
            load_run_config(algo, ALGO_TASK, [*ALGO_CONTEXT, _changed(algo, key)])
        context = REFUSED[(algo, key)]
    else:
        context = ()
    change = _changed(algo, key, context)
    default, changed = trained(algo, context), trained(algo, (*context, change))
    assert _differ(default.parameters, changed.parameters), change


@pytest.mark.parametrize("algo", [a for a in algorithm_names() if a != "lstm-a3c"])
def test_log_every_changes_the_logging_and_nothing_else(algo):
    default, every = trained(algo), trained(algo, ("algo.log_every=1",))
    assert torch.equal(default.parameters, every.parameters)
    # every 10 updates by default, so only the last of the 2 updates logs; every update here
    assert default.logged > 0 and every.logged == BATCHES * default.logged


def test_lstm_a3c_workers_sizes_the_pool():
    module = build_module(load_run_config("lstm-a3c", ALGO_TASK, [*ALGO_CONTEXT, "algo.workers=3"]))
    optimizer = make_shared_optimizer(list(module.network.parameters()), "rmsprop", 1e-3)
    pool = WorkerPool(module, optimizer, module.cfg.workers, seed=0, budget=BATCHES)
    try:
        assert len(pool.contexts) == 3
    finally:
        pool.close()


def test_lstm_a3c_worker_delays_pause_the_worker_without_changing_its_updates():
    spec = load_run_config("lstm-a3c", ALGO_TASK, [*ALGO_CONTEXT, "algo.worker_delays=[0.05]"])
    torch.manual_seed(0)
    module = build_module(spec)
    ctx = _a3c_context(module, BATCHES)
    assert ctx.delay == 0.05
    started = time.monotonic()
    ActorLearner(ctx, seed=0).run()
    assert time.monotonic() - started >= BATCHES * 0.05
    assert torch.equal(_flat(module.network), trained("lstm-a3c").parameters)


# Task families --------------------------------------------------------------------------------
FAMILY_CANDIDATES: dict[str, Any] = {
    "common_prob": 1.0,
    "high_prob": 1.0,
    "low_prob": 0.0,
    "reversal_prob": 0.5,
    "view": 5,
    "dtype": "float64",
    "book_or_nips": "nips",
    "difficulty": "easy",
    "ranges": "packer-extreme",
    "link_moi_range": [0.5, 1.5],
}
"""Changed values where the generic rule of :func:`_family_change` would be invalid."""

FAMILY_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("acrobot-params", "reference_rollouts"): "the number of Monte-Carlo rollouts of the reference "
    "scores: in episodes short enough for a test neither reference policy reaches the goal, so "
    "every rollout scores -1 per step; the same code (ClassicControlFamily.reference_scores) is "
    "checked on cartpole- and pendulum-params",
}
"""(family, field) whose effect this test cannot see cheaply, with the reason."""

SHORTER = {
    "cartpole-params": {"max_steps": 20},
    "pendulum-params": {"max_steps": 20},
    "acrobot-params": {"max_steps": 20, "episodes": 1},
}
"""Shorter trials than ``SMALL_PARAMS`` where each step is costly (the references play them)."""


def _family_fields() -> list[tuple[str, str]]:
    return [(name, field.name) for name in sorted(TASKS) for field in fields(TASKS[name].Config)]


def _family_params(name: str) -> dict[str, Any]:
    """The family's full parameters: its defaults, shortened for speed."""
    small = {**SMALL_PARAMS.get(name, {}), **SHORTER.get(name, {})}
    return {**make_task(name).config.as_dict(), **small}


def _family_change(key: str, value: Any) -> Any:
    """A different valid value: from ``FAMILY_CANDIDATES``, else flipped, grown or narrowed."""
    if key in FAMILY_CANDIDATES:
        return FAMILY_CANDIDATES[key]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return 2 * value if value else 0.5
    if isinstance(value, list):  # a [low, high] range: its lower half
        return [value[0], (value[0] + value[1]) / 2]
    raise AssertionError(f"no changed value for task.{key}={value!r}: add it to FAMILY_CANDIDATES")


def _family_fingerprint(name: str, params: dict[str, Any], steps: int) -> list[Any]:
    """Shape, a seeded trial-engine run with fixed actions (rewards, trial ends, phi, resets and
    the oracle's actions), and reference scores of a family."""
    family = make_task(name, **params)
    shape = [family.obs_dim, family.action_width, family.max_episode_steps]
    shape += [family.episodes_per_trial, family.fixed_trial_steps]
    engine = TrialEngine(family, 4, task_generator(0, "train"))
    view = engine.start()
    seen, visited = [view.phi], []
    for step in range(steps):
        if family.continuous_actions:
            low, high = family.action_bounds
            phase = torch.arange(4 * family.action_dim).view(4, -1).float() + step
            actions = low + (high - low) * (0.5 + 0.5 * torch.sin(phase))
        else:
            actions = (step + torch.arange(4)) % family.num_actions
        visited.append((view.tasks, view.state))
        transition, view = engine.step(actions)
        seen += [transition.reward, transition.trial_done.float(), view.phi, view.reset.float()]
    tasks, states = (_cat(parts) for parts in zip(*visited, strict=True))
    seen.append(family.oracle_action(tasks, states).float())  # on every state visited
    references = family.reference_scores(family.sample(2, task_generator(0, "test")))
    return [shape, *seen, *(references[k] for k in sorted(references))]


_FINGERPRINTS: dict[str, list[Any]] = {}


def _cat(batches: tuple[dict[str, torch.Tensor], ...]) -> dict[str, torch.Tensor]:
    """Batches of tasks or states, concatenated along the batch dimension."""
    return {key: torch.cat([batch[key] for batch in batches]) for key in batches[0]}


def _same(a: list[Any], b: list[Any]) -> bool:
    if len(a) != len(b) or a[0] != b[0]:
        return False
    for x, y in zip(a[1:], b[1:], strict=True):
        if (
            x.shape != y.shape
            or x.dtype != y.dtype
            or not torch.equal(x.nan_to_num(), y.nan_to_num())
        ):
            return False
    return True


def test_every_family_field_has_a_change_or_a_reason():
    for name, key in _family_fields():
        if (name, key) not in FAMILY_EXCEPTIONS:
            value = _family_params(name)[key]
            assert _family_change(key, value) != value, f"{name}: task.{key}"


@pytest.mark.parametrize(
    ("name", "key"), [pair for pair in _family_fields() if pair not in FAMILY_EXCEPTIONS]
)
def test_changing_a_family_field_changes_the_family(name, key):
    params = _family_params(name)
    family = make_task(name, **params)
    steps = family.episodes_per_trial * family.max_episode_steps + 1  # past the first trial's end
    if name not in _FINGERPRINTS:
        _FINGERPRINTS[name] = _family_fingerprint(name, params, steps)
    changed = {**params, key: _family_change(key, params[key])}
    assert not _same(_FINGERPRINTS[name], _family_fingerprint(name, changed, steps)), changed[key]
