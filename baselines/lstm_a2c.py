"""LSTM-A2C (Wang et al. 2016, "Learning to reinforcement learn").

Synchronous advantage actor-critic with an LSTM over phi(s, a_prev, r_prev, d_prev):

1. config: 48 units, discount 0.9, value and entropy costs 0.05, RMSProp (Wang et al.);
2. rollout: the DataModule plays ``t_max`` steps of B parallel trials under ``no_grad``, carrying
   the hidden state across segments (detached) and zeroing it only at trial boundaries;
3. update: the segment's LSTM outputs are the states the rollout stored, differentiated by
   backpropagation through time from them (:mod:`baselines.fast_lstm`; the fused LSTM recomputes
   the segment instead if the parameters changed since the rollout); n-step returns (TD(lambda)
   returns with ``algo.gae_lambda`` < 1) are bootstrapped from the critic at the segment's end
   (never across a trial end), and one clipped gradient step is taken on the A2C loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from baselines.base import MetaRLAlgorithm, NormalizedCriticConfig
from baselines.losses import a2c_loss
from baselines.registry import register_algorithm
from tasks import require


@dataclass
class RecurrentA2CConfig(NormalizedCriticConfig):
    """The fields of the recurrent advantage actor-critics (LSTM-A2C and LSTM-A3C; defaults after
    Wang et al. 2016)."""

    cell: str = "lstm"
    """Recurrent core: lstm (Wang et al.) or gru."""

    def __post_init__(self):
        super().__post_init__()
        require(
            self.cell in ("lstm", "gru"), f"algo.cell must be one of lstm, gru, got '{self.cell}'"
        )


@dataclass
class LSTMA2CConfig(RecurrentA2CConfig):
    """LSTM-A2C hyperparameters: the recurrent actor-critic's."""


class RecurrentA2C(MetaRLAlgorithm):
    """The recurrent advantage actor-critic's loss, shared by LSTM-A2C and LSTM-A3C."""

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The A2C loss of a rollout segment and its parts (policy loss, value loss, entropy).

        The segment is recomputed with gradients; the critic at the next step bootstraps the
        return where the segment cuts a trial (the returns ignore it where the trial ended).
        """
        logits, values, bootstrap = self.recompute(batch)
        returns = self.critic_targets(batch, values.detach(), bootstrap)
        return a2c_loss(
            self.network.distribution(logits),
            values,
            batch["actions"],
            returns,
            self.cfg.value_coef,
            self.cfg.entropy_coef,
            self.cfg.normalize_advantages,
        )


@register_algorithm
class LSTMA2C(RecurrentA2C):
    """Synchronous advantage actor-critic with a recurrent core (meta-RL through memory)."""

    name = "lstm-a2c"
    Config = LSTMA2CConfig

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss, parts = self.loss(batch)
        self.optimize(loss)
        self.record(batch, parts)
