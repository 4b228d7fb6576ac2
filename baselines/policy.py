"""The policy interface that evaluation drives, shared by learned and classical policies."""

from __future__ import annotations

from typing import Protocol

import torch

from tasks import StepView, TaskFamily


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

    Args:
        logits: float [n, num_actions].
        generator: makes the draw reproducible; None uses torch's global generator.
    """
    # Inverse-CDF sampling: one uniform per row, cheaper than torch.multinomial on small rows.
    cdf = torch.softmax(logits, dim=-1).cumsum(-1)
    device = logits.device
    uniform = torch.rand(cdf.shape[0], 1, generator=generator, device=device, dtype=cdf.dtype)
    return (cdf < uniform).sum(-1).clamp(max=logits.shape[-1] - 1)


class RandomPolicy:
    """Uniformly random actions: the zero of the normalised score."""

    def begin(self, family: TaskFamily, batch_size: int, generator: torch.Generator) -> None:
        self.num_actions = family.num_actions
        self.generator = generator

    def act(self, view: StepView) -> torch.Tensor:
        n = view.phi.shape[0]
        return torch.randint(
            self.num_actions, (n,), generator=self.generator, device=self.generator.device
        )


class OraclePolicy:
    """Knows the task and acts as the family's oracle: the one of the normalised score."""

    def begin(self, family: TaskFamily, batch_size: int, generator: torch.Generator) -> None:
        self.family = family

    def act(self, view: StepView) -> torch.Tensor:
        return self.family.oracle_action(view.tasks, view.state)
