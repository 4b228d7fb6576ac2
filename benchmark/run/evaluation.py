"""The evaluation protocol, the same for learned and classical policies.

N held-out trials (the ``test`` task stream of a seed), all played to their end. Reported: the
mean total reward per trial with its standard error, the mean return per episode index within a
trial (the adaptation curve), the mean length in steps of each episode index with its standard
error, the normalised score (random = 0, oracle = 1, from the family's expected reference scores
of the very same tasks), the regret against the oracle and, for a family with a success measure
(``TaskFamily.success_steps``), the share of episodes that succeed and, for a family with a
behavioural analysis (``TaskFamily.behaviour_recorder``, e.g. two-step's stay table), its
statistics (``behaviour``, logged as ``<prefix>/behaviour/<name>``).

A held-out evaluation (``eval.task.*``, :func:`benchmark.run.config.heldout_task`) plays the same
protocol on a second distribution of the family; :func:`evaluation_record` reports both.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from baselines.policy import Policy
from tasks import TaskFamily, TrialEngine, require, task_generator
from tasks.base import EnvState, TaskBatch


@dataclass
class EvalResult:
    """The outcome of one evaluation."""

    mean_total_reward: float
    stderr: float
    trials: int
    seed: int
    normalized_score: float
    regret: float
    random_reference: float
    oracle_reference: float
    per_episode_returns: list[float]
    per_episode_steps: list[float]
    """Mean length in steps of episode k of a trial (shorter where a goal ends episodes early)."""
    per_episode_steps_stderr: list[float]
    """Standard error of each entry of ``per_episode_steps`` over the trials."""
    success_rate: float | None = None
    """Share of all episodes of all trials that succeed by the family's success measure
    (``TaskFamily.success_steps``); None where the family has none."""
    per_episode_success_rate: list[float] | None = None
    """Share of trials whose episode k succeeds; None where the family has no success measure."""
    behaviour: dict[str, float] | None = None
    """The family's behavioural statistics (:meth:`tasks.base.TaskFamily.behaviour_recorder`);
    None where it has none."""

    def as_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


METRIC_FIELDS = ("mean_total_reward", "stderr", "normalized_score", "regret", "success_rate")
"""The fields of an :class:`EvalResult` logged as metrics (``success_rate`` where not None)."""


def result_metrics(result: EvalResult, prefix: str = "eval") -> dict[str, float]:
    """The metrics an evaluation logs (:func:`evaluation_metrics` of ``result``).

    Args:
        result: the evaluation.
        prefix: ``eval`` for the training distribution, ``heldout`` for ``eval.task``'s.
    """
    return evaluation_metrics(result.as_dict(), prefix)


def evaluation_metrics(values: dict[str, Any], prefix: str) -> dict[str, float]:
    """``<prefix>/mean_total_reward``, ``stderr``, ``normalized_score``, ``regret``, where the
    family has a success measure ``success_rate``, and ``<prefix>/behaviour/<name>`` for every
    number of ``behaviour``.

    Args:
        values: an evaluation as a dict (:meth:`EvalResult.as_dict`, or a section of
            ``evaluate``'s payload).
        prefix: ``eval`` for the training distribution, ``heldout`` for ``eval.task``'s.
    """
    metrics = {f"{prefix}/{k}": values[k] for k in METRIC_FIELDS if values.get(k) is not None}
    for name, value in (values.get("behaviour") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics[f"{prefix}/behaviour/{name}"] = float(value)
    return metrics


@torch.no_grad()
def evaluate_policy(
    policy: Policy,
    family: TaskFamily,
    trials: int,
    seed: int,
    device: torch.device | str = "cpu",
    split: str = "test",
) -> EvalResult:
    """Play ``trials`` whole trials of ``family`` with ``policy`` and summarise them.

    Args:
        policy: any :class:`baselines.policy.Policy`.
        family: the task family.
        trials: number of trials (all played in one batch).
        seed: seed of the task stream.
        device: where tasks and policy tensors live.
        split: ``test`` for reported results, ``tune`` for hyperparameter tuning.
    """
    require(trials >= 1, f"--trials must be >= 1, got {trials}")
    played = play_recorded(policy, family, trials, seed, device, split)
    totals, steps = played.totals, played.steps
    references = family.reference_scores(played.tasks)
    mean = totals.mean().item()
    stderr = totals.std().item() / math.sqrt(trials) if trials > 1 else float("nan")
    random_ref = references["random"].mean().item()
    oracle_ref = references["oracle"].mean().item()
    span = oracle_ref - random_ref
    return EvalResult(
        mean_total_reward=mean,
        stderr=stderr,
        trials=trials,
        seed=seed,
        normalized_score=(mean - random_ref) / span if span > 0 else float("nan"),
        regret=(references["oracle"] - totals).mean().item(),
        random_reference=random_ref,
        oracle_reference=oracle_ref,
        per_episode_returns=played.per_episode.mean(0).tolist(),
        per_episode_steps=steps.mean(0).tolist(),
        per_episode_steps_stderr=(steps.std(0) / math.sqrt(trials)).tolist()
        if trials > 1
        else [float("nan")] * steps.shape[1],
        success_rate=None if played.successes is None else played.successes.mean().item(),
        per_episode_success_rate=None
        if played.successes is None
        else played.successes.mean(0).tolist(),
        behaviour=played.behaviour,
    )


def evaluation_record(
    result: EvalResult, heldout: EvalResult | None, heldout_task: dict[str, Any] | None
) -> dict[str, Any]:
    """The JSON record of an evaluation (``evaluation.json``): the result's fields and, with a
    held-out evaluation, ``heldout``: its fields plus the held-out ``task`` parameters."""
    record = result.as_dict()
    if heldout is not None:
        record["heldout"] = {**heldout.as_dict(), "task": heldout_task}
    return record


@dataclass
class PlayedTrials:
    """Whole trials as played: per-trial and per-episode outcomes and the tasks."""

    totals: torch.Tensor
    """Total reward of each trial, [N]."""
    per_episode: torch.Tensor
    """Return of each episode, [N, episodes]."""
    steps: torch.Tensor
    """Length in steps of each episode, float [N, episodes]."""
    tasks: TaskBatch
    """The tasks played."""
    successes: torch.Tensor | None
    """1.0 where an episode succeeded, float [N, episodes]; None without a success measure."""
    behaviour: dict[str, float] | None = None
    """The summary of the family's behaviour recorder; None where it has none."""


def play_recorded(
    policy: Policy,
    family: TaskFamily,
    trials: int,
    seed: int,
    device: torch.device | str = "cpu",
    split: str = "test",
) -> PlayedTrials:
    """Play whole trials and record their outcomes (successes where the family measures them).

    An episode succeeds when its last ``family.success_steps`` steps or more all gave a true
    ``family.success_signal`` (a streak counted per slot, reset at every episode end) and, where
    ``family.success_within`` is set, it ended within that many steps. The family's behaviour
    recorder, where it has one, observes every step.
    """
    recorder = family.behaviour_recorder()
    probe = SuccessProbe(family) if family.success_steps is not None else None
    engine = TrialEngine(
        probe or family, trials, task_generator(seed, split, device), auto_reset=False
    )
    action_generator = torch.Generator(device=device)
    action_generator.manual_seed(seed)
    view = engine.start()
    policy.begin(family, trials, action_generator)
    totals = torch.zeros(trials, device=device)
    per_episode = torch.zeros(trials, family.episodes_per_trial, device=device)
    steps = torch.zeros_like(per_episode)
    successes = torch.zeros_like(per_episode) if probe else None
    streak = torch.zeros(trials, dtype=torch.long, device=device)
    while not engine.all_done():
        action = policy.act(view)
        transition, next_view = engine.step(action)
        if recorder is not None:
            recorder.observe(view, action, transition)
        view = next_view
        totals += transition.reward
        index = transition.episode_index.clamp(max=family.episodes_per_trial - 1).unsqueeze(1)
        per_episode.scatter_add_(1, index, transition.reward.unsqueeze(1))
        steps.scatter_add_(1, index, transition.active.float().unsqueeze(1))
        if probe is not None:
            streak = torch.where(probe.signal & transition.active, streak + 1, 0)
            ended = transition.episode_done & (streak >= family.success_steps)
            if family.success_within is not None:
                length = steps.gather(1, index).squeeze(1)  # this episode's steps so far
                ended = ended & (length <= family.success_within)
            successes.scatter_add_(1, index, ended.float().unsqueeze(1))
            streak = torch.where(transition.episode_done, 0, streak)
    behaviour = None if recorder is None else recorder.summary()
    return PlayedTrials(totals, per_episode, steps, engine.tasks, successes, behaviour)


class SuccessProbe:
    """A family as the trial engine sees it, keeping the success signal of each step.

    Every attribute is the family's; ``step`` also stores ``family.success_signal`` of the state
    it reached in :attr:`signal` (the engine replaces that state at an episode end, so the signal
    is read here, where the step's own state is known).
    """

    def __init__(self, family: TaskFamily):
        self.family = family
        self.signal = torch.zeros(0, dtype=torch.bool)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.family, name)

    def step(
        self, tasks: TaskBatch, state: EnvState, action: torch.Tensor, generator: torch.Generator
    ) -> tuple[EnvState, torch.Tensor, torch.Tensor]:
        """The family's step; its success signal goes to :attr:`signal`."""
        state, reward, terminated = self.family.step(tasks, state, action, generator)
        self.signal = self.family.success_signal(tasks, state, terminated)
        return state, reward, terminated
