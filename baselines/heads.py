"""The actor-critics' heads: a policy head of one kind (categorical or Gaussian) and a value head.

The policy head outputs categorical logits (discrete actions) or, with ``continuous=True``, the
mean of a diagonal Gaussian whose log standard deviation is one learned, state-independent
parameter per action entry. Sampled actions are not squashed: the family clips them to its bounds
(see :attr:`tasks.base.TaskFamily.action_dim`), and log-probabilities are of the unclipped sample.
Which kind of head a network has is decided once, at construction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from baselines.losses import action_distribution
from baselines.policy import (
    categorical_log_prob,
    gaussian_log_prob,
    sample_actions_by_column,
    sample_actions_with_log_prob,
    sample_gaussian_actions,
)

INITIAL_LOG_STD = 0.0
"""Initial log standard deviation of a Gaussian policy (std 1, as in CleanRL's PPO)."""


def _sample_categorical(logits, log_std, generator):
    return sample_actions_by_column(logits, generator)


def _sample_categorical_with_log_prob(logits, log_std, generator):
    return sample_actions_with_log_prob(logits, generator)


def _sample_gaussian_with_log_prob(mean, log_std, generator):
    actions = sample_gaussian_actions(mean, log_std, generator)
    return actions, gaussian_log_prob(mean, log_std, actions)


def _categorical_log_prob(logits, log_std, actions):
    return categorical_log_prob(logits, actions)


def _logits(logits, log_std):
    return logits  # the losses build the Categorical from the logits themselves


@dataclass(frozen=True)
class ActionKind:
    """The functions of one kind of policy head, ``f(head_output, log_std, ...)``.

    Module-level functions, so a network that holds one still pickles (LSTM-A3C's workers).
    """

    sample: Callable[..., torch.Tensor]
    log_prob: Callable[..., torch.Tensor]
    distribution: Callable[..., object]
    sample_with_log_prob: Callable[..., tuple[torch.Tensor, torch.Tensor]]


DISCRETE = ActionKind(
    _sample_categorical, _categorical_log_prob, _logits, _sample_categorical_with_log_prob
)
CONTINUOUS = ActionKind(
    sample_gaussian_actions, gaussian_log_prob, action_distribution, _sample_gaussian_with_log_prob
)


class ActionHead(nn.Module):
    """Base of the actor-critics: the policy and value heads over the features, the policy head's
    kind and, when continuous, its log-std."""

    def init_heads(
        self,
        hidden_size: int,
        num_actions: int,
        policy_init_gain: float | None,
        continuous: bool,
    ) -> None:
        """Create the policy and value heads over ``hidden_size`` features and choose the policy
        head's kind once; a continuous head gets a learned log-std per entry.

        Args:
            hidden_size: width of the features the heads read.
            num_actions: discrete actions, or the size of a continuous action vector.
            policy_init_gain: orthogonal-init gain of the policy head; None keeps PyTorch's default.
            continuous: a diagonal Gaussian head instead of categorical logits.
        """
        self.policy_head = nn.Linear(hidden_size, num_actions)
        self.value_head = nn.Linear(hidden_size, 1)
        if policy_init_gain is not None:
            nn.init.orthogonal_(self.policy_head.weight, gain=policy_init_gain)
            nn.init.zeros_(self.policy_head.bias)
        self.continuous = continuous
        self.action_kind = CONTINUOUS if continuous else DISCRETE
        self.log_std = (
            nn.Parameter(torch.full((num_actions,), INITIAL_LOG_STD)) if continuous else None
        )

    def sample_action(
        self, head_output: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Sample one action per row of ``head_output`` [n, ...] (long [n] or float [n, d])."""
        return self.action_kind.sample(head_output, self.log_std, generator)

    def sample_with_log_prob(
        self, head_output: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`sample_action` and the sample's :meth:`log_prob`, computed together."""
        return self.action_kind.sample_with_log_prob(head_output, self.log_std, generator)

    def log_prob(self, head_output: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log pi(actions), float [...], under ``head_output`` [..., A or d]."""
        return self.action_kind.log_prob(head_output, self.log_std, actions)

    def heads(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The policy head's output [..., A] and the values [...] of ``features`` [..., H] in one
        product: one node to back-propagate, and the features' gradient comes out whole instead
        of summed from two heads' (a pass over the features each, at [T, B, H])."""
        weight = torch.cat([self.policy_head.weight, self.value_head.weight])
        heads = nn.functional.linear(
            features, weight, torch.cat([self.policy_head.bias, self.value_head.bias])
        )
        return heads[..., :-1], heads[..., -1]

    def distribution(self, head_output: torch.Tensor):
        """What the policy losses take: the logits themselves, or a Gaussian distribution."""
        return self.action_kind.distribution(head_output, self.log_std)
