"""A2C, the non-meta baseline: advantage actor-critic on the observation alone.

A feed-forward actor-critic sees only the current observation s: no previous action, reward or
done flag, and no hidden state. It is trained exactly like LSTM-A2C, with the same options (rollout
segments, TD(lambda) returns with the trial end as the only terminal, the critic's optional target
normalisation, ``a2c_loss``), so the one thing it lacks is memory. It can therefore learn only a
fixed policy for the family: the best fixed arm of a bandit (every arm is equally good a priori on
Bernoulli bandits, about 5.0 over 10 pulls of 5 arms), and its return per episode within a trial
stays flat because it cannot adapt.
That flat curve is the contrast the benchmark exists to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from baselines.base import MetaRLAlgorithm, NormalizedCriticConfig
from baselines.losses import a2c_loss
from baselines.networks import FeedForwardActorCritic, RecurrentState
from baselines.registry import register_algorithm
from tasks import StepView


@dataclass
class A2CConfig(NormalizedCriticConfig):
    """A2C hyperparameters: LSTM-A2C's fields and defaults (Wang et al. 2016) on a two-layer MLP."""


@register_algorithm
class A2C(MetaRLAlgorithm):
    """Feed-forward advantage actor-critic on s alone (the memoryless, non-meta baseline)."""

    name = "a2c"
    Config = A2CConfig

    def build_network(self) -> FeedForwardActorCritic:
        """An MLP over the observation only (not phi)."""
        return FeedForwardActorCritic(
            self.family.obs_dim,
            self.family.action_width,
            self.cfg.hidden_size,
            self.cfg.policy_init_gain,
            continuous=self.family.continuous_actions,
        )

    def observation(self, phi: torch.Tensor) -> torch.Tensor:
        """The observation part of phi = [s, one_hot(a_prev), r_prev, d_prev]; the rest is dropped.

        Args:
            phi: float [..., phi_dim] as built by :func:`tasks.trial.build_phi`.
        """
        return phi[..., : self.family.obs_dim]

    def initial_state(self, batch_size: int) -> RecurrentState:
        """No memory: the state is empty."""
        return ()

    @torch.no_grad()
    def act(
        self,
        view: StepView,
        state: RecurrentState,
        generator: torch.Generator | None,
        record: dict[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], RecurrentState]:
        """Act on ``view.obs`` alone; ``state`` is empty and passed through unchanged.

        Args:
            view: the engine's view of the current step (only ``obs`` is read).
            state: the empty state from :meth:`initial_state`.
            generator: drives the action sampling.
            record: unused (its :meth:`rollout_storage` is empty).
        """
        logits, _ = self.network(view.obs)
        return self.network.sample_action(logits, generator), {}, state  # the update recomputes

    def rollout_storage(self, steps: int, batch: int) -> dict[str, torch.Tensor]:
        """Nothing: a memoryless network has no states to store."""
        return {}

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The A2C loss of a rollout segment and its parts (policy loss, value loss, entropy)."""
        # The segment plus one extra step whose value bootstraps a return cut by the segment's end.
        inputs = self.observation(torch.cat([batch["phi"], batch["phi_last"][None]]))
        logits, values = self.network(inputs)
        returns = self.critic_targets(batch, values[:-1].detach(), values[-1].detach())
        return a2c_loss(
            self.network.distribution(logits[:-1]),
            values[:-1],
            batch["actions"],
            returns,
            self.cfg.value_coef,
            self.cfg.entropy_coef,
            self.cfg.normalize_advantages,
        )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss, parts = self.loss(batch)
        self.optimize(loss)
        self.record(batch, parts)
