"""RL² (Duan et al. 2016, "RL²: Fast Reinforcement Learning via Slow Reinforcement Learning").

A GRU policy over phi(s, a_prev, r_prev, d_prev) plays trials of ``episodes_per_trial`` episodes of
one sampled MDP. Its hidden state is the fast learner: it is carried across episode boundaries
inside a trial and reset only when a new trial (a new MDP) begins. The slow learner is the outer
policy-gradient loop over whole trials; the paper used TRPO, here it is PPO (Schulman et al. 2017):

1. config: discount 0.99 and GAE lambda 0.3 as in the paper; a GRU whose size is set by config;
2. rollout: the DataModule plays B whole trials under ``no_grad`` (one segment = one trial), the
   GRU stepping one pull at a time;
3. targets: the log-probabilities and values the rollout computed while acting (it is on-policy;
   otherwise the fused GRU recomputes them from the stored initial hidden state); GAE
   over the whole trial, with the trial end as the only terminal (``dones = trial_done``); the
   critic regresses targets normalised by running statistics (returns over 100 pulls are ~50,
   and an unscaled value loss would swamp the policy's gradient in the shared GRU);
4. update: several epochs of minibatches of whole trials (split along the batch dimension), each
   recomputing the GRU over the whole trial with backpropagation through time, on PPO's clipped
   objective plus value loss and entropy bonus, with normalised advantages and clipped gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from baselines.base import (
    ActorCriticConfig,
    MetaRLAlgorithm,
    check_value_normalization,
    scheduled,
)
from baselines.losses import gae, ppo_clip_loss
from baselines.networks import RecurrentActorCritic, RecurrentState
from baselines.registry import register_algorithm
from tasks import StepView, phi_dim, require


@dataclass
class RL2Config(ActorCriticConfig):
    """RL² hyperparameters: discount and GAE lambda after Duan et al.; PPO settings for a CPU."""

    hidden_size: int = 64
    """Units of the GRU (256 in the paper; smaller learns the small bandits faster on a CPU)."""
    gamma: float = 0.99
    """Discount (Duan et al.)."""
    gae_lambda: float = 0.3
    """GAE lambda (Duan et al.)."""
    lr: float = 2e-3
    """Learning rate."""
    optimizer: str = "adam"
    """rmsprop or adam."""
    clip: float = 0.2
    """PPO's ratio clip epsilon."""
    epochs: int = 2
    """Passes over each batch of trials."""
    minibatches: int = 2
    """Minibatches of whole trials per epoch (the batch is split along the trial dimension)."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    entropy_coef: float = 0.03
    """Weight of the entropy bonus."""
    entropy_schedule: str = "constant"
    """constant, or linear: decay the entropy bonus to 0 over the budget (exploit at the end)."""
    grad_clip: float = 1.0
    """Gradient norm clip."""
    normalize_advantages: bool = True
    """Standardise the advantages over the batch before the update."""
    normalize_values: bool = True
    """The critic predicts value targets standardised by running statistics (a moving average)."""
    value_norm_decay: float = 0.9
    """Per-batch decay of the value targets' moving moments (with normalize_values)."""
    policy_init_gain: float | None = 0.01
    """Orthogonal-init gain of the policy head (small: a near-uniform initial policy)."""

    def __post_init__(self):
        super().__post_init__()
        check_value_normalization(self)
        require(
            0.0 <= self.gae_lambda <= 1.0,
            f"algo.gae_lambda must be in [0, 1], got {self.gae_lambda}",
        )
        require(self.clip > 0, f"algo.clip must be > 0, got {self.clip}")
        require(
            self.entropy_schedule in ("constant", "linear"),
            f"algo.entropy_schedule must be one of constant, linear, got '{self.entropy_schedule}'",
        )
        require(self.epochs >= 1, f"algo.epochs must be >= 1, got {self.epochs}")
        require(
            1 <= self.minibatches <= self.batch_size,
            f"algo.minibatches must be in [1, algo.batch_size={self.batch_size}], "
            f"got {self.minibatches}",
        )


@register_algorithm
class RL2(MetaRLAlgorithm):
    """RL²: a GRU meta-learner whose memory spans a multi-episode trial, trained by PPO."""

    name = "rl2"
    Config = RL2Config

    def __init__(self, algo: dict[str, Any], task_name: str, task: dict[str, Any]):
        super().__init__(algo, task_name, task)
        self.register_value_scale()  # always, so that checkpoints keep one layout

    def build_network(self) -> RecurrentActorCritic:
        """A GRU actor-critic over phi (the paper's recurrent cell)."""
        return RecurrentActorCritic(
            phi_dim(self.family),
            self.family.action_width,
            self.cfg.hidden_size,
            "gru",
            self.cfg.policy_init_gain,
            continuous=self.family.continuous_actions,
        )

    @property
    def optimizer_steps_per_batch(self) -> int:
        """PPO steps the optimizer ``epochs * minibatches`` times per batch of trials."""
        return self.cfg.epochs * self.cfg.minibatches

    @torch.no_grad()
    def act(
        self,
        view: StepView,
        state: RecurrentState,
        generator: torch.Generator | None,
        record: dict[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], RecurrentState]:
        """One step of the GRU policy during a rollout or an evaluation.

        Args:
            view: the engine's view of the current step (phi, reset, ...).
            state: the GRU hidden state after the previous step.
            generator: drives the action sampling.
            record: unused (its :meth:`rollout_storage` is empty).
        """
        # The input is phi = [s, one_hot(a_prev), r_prev, d_prev] (tasks.trial.build_phi). Its last
        # entry is the done flag d_prev: 1 when the previous step ended an episode. For a bandit
        # every pull is one episode, so d_prev = 1 at every step of a trial except the first.
        # The hidden state is zeroed only where view.reset is True: the first step of a trial (a
        # new MDP). An episode end (d_prev = 1) does NOT reset it; the GRU carries what it has
        # learned about this MDP into the next episode. That is the whole of RL²'s fast learner.
        logits, values, state = self.network.step(view.phi, state, view.reset_if_any)
        actions, log_probs = self.network.sample_with_log_prob(logits, generator)
        # The critic's own outputs: behaviour_outputs puts them in reward units once per batch.
        return actions, {"values": values, "log_probs": log_probs}, state

    @torch.no_grad()
    def ppo_targets(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Old log-probabilities, GAE advantages and value targets for one batch of trials.

        The old log-probabilities and values are the behaviour policy's (see
        :meth:`behaviour_outputs`), so the first minibatch's ratios are 1 up to float rounding
        between the step cell and the fused GRU. GAE treats only the trial end
        as terminal: episode ends inside a trial are not terminal for the meta-learner, which
        maximises the return of the whole trial.
        """
        # V after the segment bootstraps a trial cut short by the segment's end; when a segment is
        # exactly one trial (bandits) its last step ends the trial and this value is not used.
        log_probs, values, bootstrap = self.behaviour_outputs(batch)
        advantages = gae(
            batch["rewards"],
            values,
            batch["trial_done"],
            bootstrap,
            self.cfg.gamma,
            self.cfg.gae_lambda,
        )
        value_targets = self.critic_scale_targets(advantages + values)
        if self.cfg.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        return {"log_probs": log_probs, "advantages": advantages, "value_targets": value_targets}

    @torch.no_grad()
    def behaviour_outputs(
        self, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probabilities of the actions [T, B], values [T, B] and the bootstrap value [B]
        (in reward units) under the parameters that played the batch.

        When the rollout was on-policy these are what it computed while acting; otherwise the
        fused GRU recomputes them from the segment's stored initial state.
        """
        mean, std = self.value_scale()
        if self.is_on_policy(batch) and "state_last" in batch:
            last = batch["phi_last"], tuple(batch["state_last"]), batch["reset_last"]
            bootstrap = self.network.step(*last)[1]
            return batch["log_probs"], batch["values"] * std + mean, bootstrap * std + mean
        logits, values, bootstrap = self.recompute(batch)
        log_probs = self.network.log_prob(logits, batch["actions"])
        return log_probs, values * std + mean, bootstrap * std + mean

    def minibatch_loss(
        self, batch: dict[str, Any], targets: dict[str, torch.Tensor], index: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """PPO's loss on the whole trials ``index``, recomputing the GRU over each trial.

        Args:
            batch: the rollout batch (time leading, trials second).
            targets: from :meth:`ppo_targets`.
            index: long [b], the trials of this minibatch.
        """
        h0 = tuple(part[:, index] for part in batch["h0"])
        # Backpropagation through time over the whole trial, from the trial's zeroed initial state;
        # the reset mask is True only at the trial's first step, never at its episode ends.
        logits, values, _ = self.network(batch["phi"][:, index], h0, batch["reset"][:, index])
        return ppo_clip_loss(
            self.network.distribution(logits),
            values,
            batch["actions"][:, index],
            targets["log_probs"][:, index],
            targets["advantages"][:, index],
            targets["value_targets"][:, index],
            self.cfg.clip,
            self.cfg.value_coef,
            self.entropy_coef(),
        )

    def entropy_coef(self) -> float:
        """The entropy bonus's weight now: constant, or decayed linearly over the run's budget."""
        trainer = self._trainer
        if trainer is None:
            return self.cfg.entropy_coef
        schedule, step = self.cfg.entropy_schedule, trainer.global_step
        return scheduled(self.cfg.entropy_coef, schedule, step, trainer.max_steps)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        targets = self.ppo_targets(batch)
        trials = batch["phi"].shape[1]
        sums: dict[str, torch.Tensor] = {}
        for _ in range(self.cfg.epochs):
            order = torch.randperm(trials, device=self.device)
            for index in order.tensor_split(self.cfg.minibatches):
                loss, parts = self.minibatch_loss(batch, targets, index)
                self.optimize(loss)
                for key, value in parts.items():
                    sums[key] = sums.get(key, 0.0) + value
        updates = self.optimizer_steps_per_batch
        self.record(batch, {key: value / updates for key, value in sums.items()})
