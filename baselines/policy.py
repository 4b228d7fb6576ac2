"""The policy interface that evaluation drives, shared by learned and classical policies."""

from __future__ import annotations

import math
from typing import Protocol

import torch

from tasks import StepView, TaskFamily, require


class Policy(Protocol):
    """Acts in a batch of trials. ``begin`` is called once per batch of trials, ``act`` per step.

    A policy keeps whatever memory it needs (hidden state, arm counts) and must clear it for a slot
    where ``view.reset`` is True.
    """

    def begin(self, family: TaskFamily, batch_size: int, generator: torch.Generator) -> None:
        """Prepare for ``batch_size`` new trials of ``family``; ``generator`` drives sampling."""

    def act(self, view: StepView) -> torch.Tensor:
        """Return long [n] actions for the current step."""


def sample_actions(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Sample one action per row from categorical ``logits`` with an explicit generator.

    The plain row-wise draw, kept for the naive parity loops of ``metarl-bench perf``; the suite's
    own steps draw the same action with :func:`sample_actions_by_column` (faster reductions).

    Args:
        logits: float [n, num_actions].
        generator: makes the draw reproducible; None uses torch's global generator.
    """
    # Inverse-CDF sampling: one uniform per row, cheaper than torch.multinomial on small rows.
    cdf = torch.softmax(logits, dim=-1).cumsum(-1)
    device = logits.device
    uniform = torch.rand(cdf.shape[0], 1, generator=generator, device=device, dtype=cdf.dtype)
    return (cdf < uniform).sum(-1).clamp(max=logits.shape[-1] - 1)


def sample_actions_with_log_prob(
    logits: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sample_actions` (the same draw) and the sample's log-probability.

    Works on the actions-major layout ``logits.t()`` [num_actions, n], where the reductions over
    a handful of actions run along contiguous rows of n (several times faster than over the last
    dimension of [n, num_actions]); a step whose heads are computed that way passes that view.

    Args:
        logits: float [n, num_actions].
        generator: makes the draw reproducible; None uses torch's global generator.
    """
    columns = logits.t().contiguous()  # a no-op for a transposed actions-major view
    log_probs = torch.log_softmax(columns, dim=0)
    actions = _draw_by_column(log_probs.exp().cumsum(0), generator)
    return actions, log_probs.gather(0, actions[None])[0]


def sample_actions_by_column(
    logits: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """:func:`sample_actions_with_log_prob`'s draw without the log-probability, for a rollout or
    an evaluation that does not keep it (reductions along the actions-major layout, as there).

    Args:
        logits: float [n, num_actions].
        generator: makes the draw reproducible; None uses torch's global generator.
    """
    return _draw_by_column(torch.softmax(logits.t().contiguous(), dim=0).cumsum(0), generator)


def _draw_by_column(cdf: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Inverse-CDF draws from the cumulative probabilities ``cdf`` [num_actions, n]: one
    uniform per column. The last entry is left out of the count, so a last entry rounded below 1
    still gives the last action."""
    uniform = torch.rand(1, cdf.shape[1], generator=generator, device=cdf.device, dtype=cdf.dtype)
    return (cdf[:-1] < uniform).sum(0)


def categorical_log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log pi(a) of long ``actions`` [...] under categorical ``logits`` [..., A]."""
    return torch.log_softmax(logits, -1).gather(-1, actions[..., None]).squeeze(-1)


def sample_gaussian_actions(
    mean: torch.Tensor, log_std: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Sample unclipped actions from the diagonal Gaussian N(mean, exp(log_std)^2).

    Args:
        mean: float [n, action_dim].
        log_std: float [action_dim], state-independent.
        generator: makes the draw reproducible; None uses torch's global generator.
    """
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + log_std.exp() * noise


def gaussian_log_prob(
    mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor
) -> torch.Tensor:
    """log N(actions; mean, exp(log_std)^2), summed over the action's entries: float [...].

    Args:
        mean: float [..., action_dim].
        log_std: float [action_dim].
        actions: float [..., action_dim].
    """
    z = (actions - mean) * torch.exp(-log_std)
    per_entry = -0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
    return per_entry.sum(-1)


class RandomPolicy:
    """Uniformly random actions (uniform in the bounds when continuous): the zero of the score."""

    def begin(self, family: TaskFamily, batch_size: int, generator: torch.Generator) -> None:
        self.num_actions = family.num_actions
        self.generator = generator
        self.continuous = family.continuous_actions
        self.action_dim = family.action_dim
        self.low, self.high = family.action_bounds

    def act(self, view: StepView) -> torch.Tensor:
        n = view.phi.shape[0]
        device = self.generator.device
        if self.continuous:
            uniform = torch.rand(n, self.action_dim, generator=self.generator, device=device)
            return self.low + (self.high - self.low) * uniform
        return torch.randint(self.num_actions, (n,), generator=self.generator, device=device)


class OraclePolicy:
    """Knows the task and acts as the family's oracle: the one of the normalised score."""

    def begin(self, family: TaskFamily, batch_size: int, generator: torch.Generator) -> None:
        require(
            family.has_oracle,
            f"task '{family.name}' has no oracle policy (no known optimal policy); "
            "compare raw returns instead",
        )
        self.family = family

    def act(self, view: StepView) -> torch.Tensor:
        return self.family.oracle_action(view.tasks, view.state)
