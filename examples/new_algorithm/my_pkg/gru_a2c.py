"""GRU-A2C: a user's own meta-RL algorithm, written against the suite's public base class.

A GRU core (as in RL²) trained by synchronous advantage actor-critic whose advantages are
generalised advantage estimates (GAE). The file reads top to bottom:

1. ``GRUA2CConfig``: the hyperparameters, one docstring each. The defaults are settings that
   learn on Bernoulli bandits with 10 pulls (the example's README has the numbers).
2. ``gae_a2c_loss``: the loss, a pure function of tensors (easy to test on its own).
3. ``GRUA2C``: the algorithm. ``build_network`` makes the network and ``training_step`` takes
   one gradient step on a rollout segment.

Everything else comes from the suite. Its DataModule plays whole trials with the policy (under
``no_grad``) and hands them to ``training_step``. The hidden state is reset only where a new task
is drawn. Evaluation on held-out tasks, MLflow records, checkpoints and tables are the suite's too.

Run it with this folder on ``PYTHONPATH``, e.g.
``metarl-bench run my_pkg.gru_a2c:GRUA2C bernoulli-bandit task.arms=5 task.pulls=10
trainer.env_steps=2560000``, or ``pip install -e examples/new_algorithm`` and name it ``gru-a2c``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from baselines.base import MetaRLAlgorithm, SegmentedActorCriticConfig
from baselines.losses import a2c_loss, gae
from baselines.networks import RecurrentActorCritic
from tasks import phi_dim, require


# 1. Config ---------------------------------------------------------------------------------
@dataclass
class GRUA2CConfig(SegmentedActorCriticConfig):
    """GRU-A2C's hyperparameters: the suite's actor-critic fields with defaults that learn, plus
    GAE's lambda. Any field can be overridden on the command line (``algo.lr=0.003``)."""

    batch_size: int = 64
    """Parallel trials per rollout (B)."""
    gamma: float = 0.9
    """Discount (about the length of a 10-pull trial)."""
    optimizer: str = "adam"
    """rmsprop or adam."""
    lr: float = 0.01
    """Learning rate at the start of the run."""
    lr_schedule: str = "linear"
    """constant, or linear: decay the learning rate to 0 over the run's budget."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    entropy_coef: float = 0.02
    """Weight of the entropy bonus (keeps the policy exploring early on)."""
    normalize_advantages: bool = True
    """Scale each batch's advantages to zero mean and unit variance."""
    policy_init_gain: float | None = 1.0
    """Orthogonal-init gain of the policy head."""
    gae_lambda: float = 1.0
    """GAE lambda: 1 gives n-step (Monte Carlo within the segment) advantages, 0 one-step TD
    errors; in between trades the advantages' variance for the critic's bias."""

    def __post_init__(self):
        super().__post_init__()
        require(
            0.0 <= self.gae_lambda <= 1.0,
            f"algo.gae_lambda must be in [0, 1], got {self.gae_lambda}",
        )


# 2. Loss -------------------------------------------------------------------------------------
def gae_a2c_loss(
    logits: torch.Tensor,
    values: torch.Tensor,
    bootstrap: torch.Tensor,
    segment: dict[str, torch.Tensor],
    cfg: GRUA2CConfig,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The A2C loss of one rollout segment with GAE advantages: a pure function of its inputs.

    Args:
        logits: float [T, B, A], the policy's logits with gradients (or the distribution that
            ``network.distribution`` makes of them, for continuous actions).
        values: float [T, B], the critic's values with gradients.
        bootstrap: float [B], the critic's value at the step after the segment (no gradient).
        segment: the rollout's ``rewards`` [T, B], ``actions`` [T, B] and ``trial_done`` [T, B]
            (True where a trial ended: nothing is bootstrapped across it).
        cfg: the hyperparameters (``gamma``, ``gae_lambda``, the loss weights).

    Returns:
        the scalar loss, and its parts (policy loss, value loss, entropy) for logging.
    """
    advantages = gae(
        segment["rewards"],
        values.detach(),
        segment["trial_done"],
        bootstrap,
        cfg.gamma,
        cfg.gae_lambda,
    )
    # a2c_loss regresses the critic on targets and uses targets - V as the advantages: with
    # targets A + V those advantages are exactly GAE's.
    return a2c_loss(
        logits,
        values,
        segment["actions"],
        advantages + values.detach(),
        cfg.value_coef,
        cfg.entropy_coef,
        cfg.normalize_advantages,
    )


# 3. Algorithm --------------------------------------------------------------------------------
class GRUA2C(MetaRLAlgorithm):
    """Advantage actor-critic with a GRU core and GAE advantages."""

    name = "gru-a2c"
    Config = GRUA2CConfig

    def build_network(self) -> RecurrentActorCritic:
        """A GRU actor-critic over phi(s, a_prev, r_prev, d_prev), the observation with the
        previous action, reward and done flag: the GRU's state is the policy's memory of the
        task."""
        return RecurrentActorCritic(
            phi_dim(self.family),
            self.family.action_width,
            self.cfg.hidden_size,
            cell="gru",
            policy_init_gain=self.cfg.policy_init_gain,
            continuous=self.family.continuous_actions,
        )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """One update: rerun the segment with gradients, take one step on its loss, log."""
        # The rollout ran under no_grad; rerun it from its stored initial hidden state.
        logits, values, bootstrap = self.recompute(batch)
        policy = self.network.distribution(logits)
        loss, parts = gae_a2c_loss(policy, values, bootstrap, batch, self.cfg)
        self.optimize(loss)  # zero_grad, backward, gradient clipping, lr schedule, step
        self.record(batch, parts)  # counts env steps; logs train/* metrics against them
