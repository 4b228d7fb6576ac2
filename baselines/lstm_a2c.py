"""LSTM-A2C (Wang et al. 2016, "Learning to reinforcement learn").

Synchronous advantage actor-critic with an LSTM over phi(s, a_prev, r_prev, d_prev):

1. config: 48 units, discount 0.9, value and entropy costs 0.05, RMSProp (Wang et al.);
2. rollout: the DataModule plays ``t_max`` steps of B parallel trials under ``no_grad``, carrying
   the hidden state across segments (detached) and zeroing it only at trial boundaries;
3. update: the segment's LSTM outputs are the states the rollout stored, differentiated by
   backpropagation through time from them (:mod:`baselines.fast_lstm`; the fused LSTM recomputes
   the segment instead if the parameters changed since the rollout); n-step returns are
   bootstrapped from the critic at the segment's end (never across a trial end), and one
   clipped gradient step is taken on the A2C loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from baselines.base import ActorCriticConfig, MetaRLAlgorithm
from baselines.losses import a2c_loss, n_step_returns
from baselines.registry import register_algorithm
from tasks import require


@dataclass
class LSTMA2CConfig(ActorCriticConfig):
    """LSTM-A2C hyperparameters (defaults after Wang et al. 2016)."""

    cell: str = "lstm"
    """Recurrent core: lstm (Wang et al.) or gru."""

    def __post_init__(self):
        super().__post_init__()
        require(
            self.cell in ("lstm", "gru"), f"algo.cell must be one of lstm, gru, got '{self.cell}'"
        )


@register_algorithm
class LSTMA2C(MetaRLAlgorithm):
    """Synchronous advantage actor-critic with a recurrent core (meta-RL through memory)."""

    name = "lstm-a2c"
    Config = LSTMA2CConfig

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        # Recompute the segment with gradients; the critic at the next step bootstraps the return
        # where the segment cuts a trial (n_step_returns ignores it where the trial ended).
        logits, values, bootstrap = self.recompute(batch)
        returns = n_step_returns(batch["rewards"], batch["trial_done"], bootstrap, self.cfg.gamma)
        loss, parts = a2c_loss(
            self.network.distribution(logits),
            values,
            batch["actions"],
            returns,
            self.cfg.value_coef,
            self.cfg.entropy_coef,
            self.cfg.normalize_advantages,
        )
        self.optimize(loss)
        self.record(batch, parts)
