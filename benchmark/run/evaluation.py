"""The evaluation protocol, the same for learned and classical policies.

N held-out trials (the ``test`` task stream of a seed), all played to their end. Reported: the
mean total reward per trial with its standard error, the mean return per episode index within a
trial (the adaptation curve), the mean length in steps of each episode index with its standard
error, the normalised score (random = 0, oracle = 1, from the family's expected reference scores
of the very same tasks) and the regret against the oracle.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from baselines.policy import Policy
from tasks import TaskFamily, TrialEngine, require, task_generator


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

    def as_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


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
    totals, per_episode, steps, tasks = play_trials(policy, family, trials, seed, device, split)
    references = family.reference_scores(tasks)
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
        per_episode_returns=per_episode.mean(0).tolist(),
        per_episode_steps=steps.mean(0).tolist(),
        per_episode_steps_stderr=(steps.std(0) / math.sqrt(trials)).tolist()
        if trials > 1
        else [float("nan")] * steps.shape[1],
    )


def play_trials(
    policy: Policy,
    family: TaskFamily,
    trials: int,
    seed: int,
    device: torch.device | str = "cpu",
    split: str = "test",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Play whole trials.

    Returns totals [N], returns per episode [N, episodes], the length in steps of every episode
    (float [N, episodes]) and the tasks played.
    """
    engine = TrialEngine(family, trials, task_generator(seed, split, device), auto_reset=False)
    action_generator = torch.Generator(device=device)
    action_generator.manual_seed(seed)
    view = engine.start()
    policy.begin(family, trials, action_generator)
    totals = torch.zeros(trials, device=device)
    per_episode = torch.zeros(trials, family.episodes_per_trial, device=device)
    steps = torch.zeros_like(per_episode)
    while not engine.all_done():
        transition, view = engine.step(policy.act(view))
        totals += transition.reward
        index = transition.episode_index.clamp(max=family.episodes_per_trial - 1).unsqueeze(1)
        per_episode.scatter_add_(1, index, transition.reward.unsqueeze(1))
        steps.scatter_add_(1, index, transition.active.float().unsqueeze(1))
    return totals, per_episode, steps, engine.tasks
