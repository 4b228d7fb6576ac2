"""GRU-A2C with GAE: an example of a user's own algorithm, kept outside the suite's code.

It is a real variant, not a renamed baseline: a GRU core (as in RL²) trained by synchronous
advantage actor-critic whose advantages are generalised advantage estimates (GAE, lambda 0.95)
instead of LSTM-A2C's n-step returns. Everything else comes from the suite:

- the base class :class:`baselines.base.MetaRLAlgorithm` (a LightningModule with manual
  optimisation; rollouts of whole trials come from the suite's DataModule, and the hidden state is
  reset only at trial boundaries);
- the network :class:`baselines.networks.RecurrentActorCritic`;
- the pure functions :func:`baselines.losses.gae` and :func:`baselines.losses.a2c_loss`.

Name it in a sweep YAML as ``my_pkg.gru_a2c:GRUA2C`` (with this folder on ``PYTHONPATH``), or
``pip install -e examples/new_algorithm`` and use the entry-point name ``gru-a2c``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from baselines.base import MetaRLAlgorithm, SegmentedActorCriticConfig
from baselines.losses import a2c_loss, gae
from baselines.networks import RecurrentActorCritic
from tasks import phi_dim, require


@dataclass
class GRUA2CConfig(SegmentedActorCriticConfig):
    """GRU-A2C hyperparameters: the suite's actor-critic defaults (rollout segments included) plus
    GAE's lambda."""

    gae_lambda: float = 0.95
    """GAE lambda: 1 gives Monte Carlo advantages, 0 one-step TD errors."""

    def __post_init__(self):
        super().__post_init__()
        require(
            0.0 <= self.gae_lambda <= 1.0,
            f"algo.gae_lambda must be in [0, 1], got {self.gae_lambda}",
        )


class GRUA2C(MetaRLAlgorithm):
    """Advantage actor-critic with a GRU core and GAE advantages."""

    name = "gru-a2c"
    Config = GRUA2CConfig

    def build_network(self) -> RecurrentActorCritic:
        """A GRU actor-critic over phi(s, a_prev, r_prev, d_prev)."""
        return RecurrentActorCritic(
            phi_dim(self.family),
            self.family.num_actions,
            self.cfg.hidden_size,
            cell="gru",
            policy_init_gain=self.cfg.policy_init_gain,
        )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        # Recompute the stored segment with gradients from its stored initial hidden state.
        logits, values, bootstrap = self.recompute(batch)
        advantages = gae(
            batch["rewards"],
            values.detach(),
            batch["trial_done"],
            bootstrap,
            self.cfg.gamma,
            self.cfg.gae_lambda,
        )
        # a2c_loss takes value targets; with targets A + V its advantages are exactly GAE's.
        targets = advantages + values.detach()
        loss, parts = a2c_loss(
            logits,
            values,
            batch["actions"],
            targets,
            self.cfg.value_coef,
            self.cfg.entropy_coef,
            self.cfg.normalize_advantages,
        )
        self.optimize(loss)
        self.record(batch, parts)
