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

from baselines.base import MetaRLAlgorithm, SegmentedActorCriticConfig, check_value_normalization
from baselines.losses import a2c_loss, lambda_returns
from baselines.registry import register_algorithm
from tasks import require


@dataclass
class RecurrentA2CConfig(SegmentedActorCriticConfig):
    """The fields of the recurrent advantage actor-critics (LSTM-A2C and LSTM-A3C; defaults after
    Wang et al. 2016)."""

    cell: str = "lstm"
    """Recurrent core: lstm (Wang et al.) or gru."""
    gae_lambda: float = 1.0
    """Lambda of the TD(lambda) returns the actor and critic learn from: 1 gives Wang et al.'s
    n-step returns; lower trades the returns' variance for the critic's bias (GAE)."""

    def __post_init__(self):
        super().__post_init__()
        require(
            self.cell in ("lstm", "gru"), f"algo.cell must be one of lstm, gru, got '{self.cell}'"
        )
        require(
            0.0 <= self.gae_lambda <= 1.0,
            f"algo.gae_lambda must be in [0, 1], got {self.gae_lambda}",
        )


@dataclass
class LSTMA2CConfig(RecurrentA2CConfig):
    """LSTM-A2C hyperparameters: the recurrent actor-critic's, plus the critic's target scale."""

    normalize_values: bool = False
    """The critic predicts returns standardised by running statistics (as RL²'s does), so a long
    discounted horizon (returns of tens) does not swamp the policy's gradient."""
    value_norm_decay: float = 0.9
    """Per-batch decay of the returns' moving moments (with normalize_values)."""

    def __post_init__(self):
        super().__post_init__()
        check_value_normalization(self)


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

    @torch.no_grad()
    def critic_targets(
        self, batch: dict[str, Any], values: torch.Tensor, bootstrap: torch.Tensor
    ) -> torch.Tensor:
        """The TD(lambda) returns [T, B] (n-step at lambda 1) on the critic's scale: in reward
        units, or standardised by the running moments (updated with this batch first) when
        ``normalize_values``. ``values`` and ``bootstrap`` are the critic's outputs."""
        mean, std = self.value_scale()
        returns = lambda_returns(
            batch["rewards"],
            values * std + mean,
            batch["trial_done"],
            bootstrap * std + mean,
            self.cfg.gamma,
            self.cfg.gae_lambda,
        )
        return self.critic_scale_targets(returns)


@register_algorithm
class LSTMA2C(RecurrentA2C):
    """Synchronous advantage actor-critic with a recurrent core (meta-RL through memory)."""

    name = "lstm-a2c"
    Config = LSTMA2CConfig

    def __init__(self, algo: dict[str, Any], task_name: str, task: dict[str, Any]):
        super().__init__(algo, task_name, task)
        if self.cfg.normalize_values:
            self.register_value_scale()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss, parts = self.loss(batch)
        self.optimize(loss)
        self.record(batch, parts)
