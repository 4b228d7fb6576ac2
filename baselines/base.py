"""The algorithm base: a LightningModule with manual optimisation that the suite knows how to run.

A subclass sets ``name`` and ``Config`` (a dataclass with a docstring per field), builds its network
in ``build_network`` and implements ``training_step`` over a rollout batch from
:class:`benchmark.run.datamodule.MetaRLDataModule`. Rollouts are collected by the DataModule through
``act`` under ``no_grad`` (:class:`baselines.rollout.RolloutCollector`); the update recomputes the
sequence with gradients. An algorithm that gathers its own experience overrides ``experience``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from torch import nn

from baselines.losses import lambda_returns
from baselines.networks import RecurrentActorCritic, RecurrentState, mask_state
from tasks import StepView, TaskFamily, make_task, phi_dim, require


@dataclass
class ActorCriticConfig:
    """Fields that every actor-critic algorithm reads."""

    batch_size: int = 256
    """Parallel trials per rollout (B)."""
    hidden_size: int = 48
    """Units in the network's core."""
    gamma: float = 0.9
    """Discount."""
    lr: float = 7e-4
    """Learning rate."""
    optimizer: str = "rmsprop"
    """rmsprop or adam."""
    value_coef: float = 0.05
    """Weight of the value loss."""
    entropy_coef: float = 0.05
    """Weight of the entropy bonus."""
    grad_clip: float = 40.0
    """Gradient norm clip (applied with ``self.clip_gradients``)."""
    log_every: int = 10
    """Updates between logged training metrics."""
    policy_init_gain: float | None = None
    """Orthogonal-init gain of the policy head; None keeps PyTorch's default initialisation."""
    lr_schedule: str = "constant"
    """constant, or linear: decay the learning rate to 0 over the run's budget."""
    normalize_advantages: bool = False
    """Scale each batch's advantages to zero mean and unit variance."""

    def __post_init__(self):
        for key in ("batch_size", "hidden_size", "log_every"):
            value = getattr(self, key)
            require(value >= 1, f"algo.{key} must be >= 1, got {value}")
        require(0.0 <= self.gamma <= 1.0, f"algo.gamma must be in [0, 1], got {self.gamma}")
        require(self.lr > 0, f"algo.lr must be > 0, got {self.lr}")
        require(
            self.optimizer in ("rmsprop", "adam"),
            f"algo.optimizer must be one of rmsprop, adam, got '{self.optimizer}'",
        )
        require(self.grad_clip > 0, f"algo.grad_clip must be > 0, got {self.grad_clip}")
        require(
            self.lr_schedule in ("constant", "linear"),
            f"algo.lr_schedule must be one of constant, linear, got '{self.lr_schedule}'",
        )


@dataclass
class SegmentedActorCriticConfig(ActorCriticConfig):
    """The actor-critic fields plus the rollout's segment length, for algorithms whose update
    learns from segments cut out of a trial (A2C's n-step returns, truncated BPTT)."""

    rollout_steps: int = 0
    """Steps per rollout segment (t_max); 0 means one whole trial of the family."""

    def __post_init__(self):
        super().__post_init__()
        require(
            self.rollout_steps >= 0, f"algo.rollout_steps must be >= 0, got {self.rollout_steps}"
        )


@dataclass
class NormalizedCriticConfig(SegmentedActorCriticConfig):
    """The segmented actor-critic fields plus the lambda of the TD(lambda) returns that its actor
    and critic learn from and the option of a critic on a standardised scale (A2C, LSTM-A2C,
    LSTM-A3C)."""

    gae_lambda: float = 1.0
    """Lambda of the TD(lambda) returns the actor and critic learn from: 1 gives Wang et al.'s
    n-step returns; lower trades the returns' variance for the critic's bias (GAE)."""

    normalize_values: bool = False
    """The critic predicts returns standardised by running statistics (as RL²'s does), so a long
    discounted horizon (returns of tens) does not swamp the policy's gradient."""
    value_norm_decay: float = 0.9
    """Per-batch decay of the returns' moving moments (with normalize_values)."""

    def __post_init__(self):
        super().__post_init__()
        require(
            0.0 <= self.gae_lambda <= 1.0,
            f"algo.gae_lambda must be in [0, 1], got {self.gae_lambda}",
        )
        check_value_normalization(self)


def scheduled(value: float, schedule: str, step: int, total: int) -> float:
    """A coefficient under its schedule: ``constant``, or ``linear`` decay to 0 over the budget.

    Args:
        value: the coefficient at the start of the run.
        schedule: ``constant`` or ``linear``.
        step: updates taken so far.
        total: updates in the whole run.
    """
    if schedule == "linear":
        return value * max(0.0, 1.0 - step / max(1, total))
    return value


def check_value_normalization(cfg: Any) -> None:
    """Validate a config's ``normalize_values`` and ``value_norm_decay``: the decay lies in [0, 1)
    and differs from its default only where the critic's targets are normalised (elsewhere it
    would do nothing).

    Args:
        cfg: a config dataclass with both fields.
    """
    decay = cfg.value_norm_decay
    require(0.0 <= decay < 1.0, f"algo.value_norm_decay must be in [0, 1), got {decay}")
    default = next(f.default for f in fields(cfg) if f.name == "value_norm_decay")
    require(
        cfg.normalize_values or decay == default,
        f"algo.value_norm_decay acts only with algo.normalize_values=true, got {decay} with "
        "normalize_values=false",
    )


class MetaRLAlgorithm(pl.LightningModule):
    """Base class of every learned algorithm (subclass it to add your own).

    Args:
        algo: the algorithm's config fields (validated by ``Config``).
        task_name: the registered family trained on.
        task: the family's parameters.
    """

    name: ClassVar[str]
    Config: ClassVar[type] = ActorCriticConfig

    def __init__(self, algo: dict[str, Any], task_name: str, task: dict[str, Any]):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.cfg = self.Config(**algo)
        self.family: TaskFamily = make_task(task_name, **task)
        self.network = self.build_network()
        self.register_buffer("env_steps", torch.zeros((), dtype=torch.long))
        if getattr(self.cfg, "normalize_values", False):
            self.register_value_scale()
        self._metric_sums: dict[str, torch.Tensor] = {}

    # To implement --------------------------------------------------------------------------
    def build_network(self) -> nn.Module:
        """The policy/value network; the default is a recurrent actor-critic over phi."""
        cell = getattr(self.cfg, "cell", "lstm")
        return RecurrentActorCritic(
            phi_dim(self.family),
            self.family.action_width,
            self.cfg.hidden_size,
            cell,
            self.cfg.policy_init_gain,
            continuous=self.family.continuous_actions,
        )

    def experience(self, seed: int) -> Iterator[Any] | None:
        """Where the batches of ``training_step`` come from.

        None (the default): the DataModule collects on-policy rollout segments with :meth:`act`
        (:class:`baselines.rollout.RolloutCollector`). An algorithm that gathers its own
        experience (LSTM-A3C's actor-learner processes) returns the stream of its batches instead;
        the DataModule yields it as is, and the stream ends with the run's budget.

        Args:
            seed: the run's seed (training tasks come from its ``train`` stream).
        """
        return None

    # Rollout interface used by the DataModule and by evaluation -----------------------------
    @property
    def policy_version(self) -> int:
        """The parameters' total count of in-place changes (PyTorch's version counters, which
        every optimiser step and ``load_state_dict`` bump). A rollout records it, so an update can
        tell whether the current parameters played the rollout (on-policy)."""
        return sum(p._version for p in self.parameters())

    @property
    def rollout_length(self) -> int:
        """Steps per rollout segment (t_max): ``algo.rollout_steps`` where the config has that
        field and it is not 0, else one whole trial."""
        steps = getattr(self.cfg, "rollout_steps", 0)
        if steps == 0:
            fixed = self.family.fixed_trial_steps
            return fixed or self.family.episodes_per_trial * self.family.max_episode_steps
        return steps

    @property
    def optimizer_steps_per_batch(self) -> int:
        """``optimizer.step()`` calls per rollout batch (``global_step`` counts them)."""
        return 1

    def initial_state(self, batch_size: int) -> RecurrentState:
        """The zero hidden state for ``batch_size`` slots."""
        return self.network.initial_state(batch_size, self.device)

    @torch.no_grad()
    def act(
        self,
        view: StepView,
        state: RecurrentState,
        generator: torch.Generator | None,
        record: dict[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], RecurrentState]:
        """One rollout step: sample actions and return what the update needs.

        The hidden state is zeroed where ``view.reset`` (a trial boundary) and carried otherwise,
        including across episode ends inside a trial. The update recomputes the log-probabilities
        and values, so only the LSTM's states are kept (:meth:`RecurrentActorCritic.replay_fields`):
        written into ``record``, this step's rows of :meth:`rollout_storage`, when given, else
        returned. An algorithm whose update needs the behaviour policy's outputs (RL²) overrides
        this.
        """
        logits, _, state = self.network.step(view.phi, state, view.reset_if_any, record)
        actions = self.network.sample_action(logits, generator)
        return actions, {} if record else self.network.replay_fields(state), state

    def rollout_storage(self, steps: int, batch: int) -> dict[str, torch.Tensor]:
        """Empty [steps, batch, ...] tensors that :meth:`act` fills one row per step (the LSTM's
        states and gates; empty for a GRU core)."""
        return self.network.replay_storage(steps, batch, self.device)

    def training_state(self) -> dict[str, Any]:
        """What a resumable checkpoint needs beyond ``state_dict`` (parameters and buffers, the
        env-step counter among them): the metric sums accumulated since the last log."""
        return {"metric_sums": dict(self._metric_sums)}

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        """Restore the optimiser from its ``state_dict`` (a resumed run)."""
        optimizer.load_state_dict(state)

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`training_state`."""
        self._metric_sums = {
            key: value.to(self.device) if isinstance(value, torch.Tensor) else value
            for key, value in state["metric_sums"].items()
        }

    def make_policy(self) -> ModulePolicy:
        """A :class:`baselines.policy.Policy` that acts with this module's network."""
        return ModulePolicy(self)

    # Shared training helpers -------------------------------------------------------------
    def recompute(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Re-run a stored segment with gradients, from its stored initial hidden state.

        Returns logits [T, B, A] and values [T, B] with gradients, and the critic's value at the
        step after the segment (no gradient), which bootstraps a return cut by truncation.
        """
        return self.network.rerun(batch, current=self.is_on_policy(batch))

    def is_on_policy(self, batch: dict[str, Any]) -> bool:
        """Whether the rollout was played by the current parameters, so that what it computed
        (log-probabilities, values, LSTM states) is what a recomputation would give."""
        return int(batch.get("policy_version", -1)) == self.policy_version

    def can_replay(self, batch: dict[str, Any]) -> bool:
        """Whether the update may reuse the rollout's LSTM states instead of recomputing them."""
        return "hidden" in batch and self.is_on_policy(batch)

    def configure_optimizers(self):
        if self.cfg.optimizer == "adam":
            return torch.optim.Adam(self.parameters(), lr=self.cfg.lr)
        return torch.optim.RMSprop(self.parameters(), lr=self.cfg.lr, alpha=0.99, eps=1e-5)

    def register_value_scale(self) -> None:
        """Buffers of the running moments of the critic's targets (``algo.normalize_values``):
        their moving mean and second moment, and the number of batches seen."""
        self.register_buffer("value_moments", torch.tensor([0.0, 1.0]))
        self.register_buffer("value_batches", torch.zeros((), dtype=torch.long))

    def learned_statistics(self) -> list[torch.Tensor]:
        """Buffers that the loss updates besides the parameters (the critic's running moments,
        where registered): asynchronous learners share them as they share the parameters."""
        return [
            getattr(self, name)
            for name in ("value_moments", "value_batches")
            if hasattr(self, name)
        ]

    def value_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation that turn the critic's output into a value."""
        if not getattr(self.cfg, "normalize_values", False):
            return torch.zeros((), device=self.device), torch.ones((), device=self.device)
        mean, second = self.value_moments
        return mean, (second - mean**2).clamp(min=1e-4).sqrt()

    def update_value_scale(self, value_targets: torch.Tensor) -> None:
        """Fold one batch's value targets into the moving moments (the first batch sets them).

        Args:
            value_targets: float [T, B], the critic's targets in reward units.
        """
        first = self.value_batches == 0
        decay = torch.where(first, 0.0, self.cfg.value_norm_decay)
        batch_moments = torch.stack([value_targets.mean(), value_targets.pow(2).mean()])
        self.value_moments.copy_(decay * self.value_moments + (1 - decay) * batch_moments)
        self.value_batches += 1

    def critic_scale_targets(self, value_targets: torch.Tensor) -> torch.Tensor:
        """The critic's regression targets from targets in reward units: unchanged, or, with
        ``algo.normalize_values``, standardised by the running moments after folding them in."""
        if not getattr(self.cfg, "normalize_values", False):
            return value_targets
        self.update_value_scale(value_targets)
        mean, std = self.value_scale()
        return (value_targets - mean) / std

    @torch.no_grad()
    def critic_targets(
        self, batch: dict[str, Any], values: torch.Tensor, bootstrap: torch.Tensor
    ) -> torch.Tensor:
        """The TD(lambda) returns [T, B] of a segment (``algo.gamma``, ``algo.gae_lambda``; n-step
        at lambda 1) on the critic's scale: in reward units, or standardised by the running
        moments (updated with this batch first) when ``normalize_values``.

        Args:
            batch: the segment (``rewards`` and ``trial_done`` [T, B] are read).
            values: float [T, B], the critic's outputs on the segment.
            bootstrap: float [B], the critic's output at the step after the segment.
        """
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

    def optimize(self, loss: torch.Tensor) -> None:
        """One manual optimisation step with gradient-norm clipping."""
        optimizer = self.optimizers()
        trainer = self.trainer
        lr = scheduled(self.cfg.lr, self.cfg.lr_schedule, trainer.global_step, trainer.max_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad()
        self.manual_backward(loss)
        self.clip_gradients(
            optimizer, gradient_clip_val=self.cfg.grad_clip, gradient_clip_algorithm="norm"
        )
        optimizer.step()

    def record(self, batch: dict[str, Any], parts: dict[str, torch.Tensor]) -> None:
        """Count environment steps and log :func:`interval_metrics` against them every
        ``log_every`` updates and after the last one.

        Metrics stay on the device between logs; only a logging step reads them back.
        """
        self.env_steps += int(batch["env_steps"])
        parts = {**parts, "reward_per_step": batch["rewards"].mean()}
        sums = self._metric_sums
        for key, value in parts.items():
            sums[key] = sums.get(key, 0.0) + value.detach()
        for key in ("completed_return", "completed_trials"):
            sums[key] = sums.get(key, 0.0) + batch[key]
        sums["updates"] = sums.get("updates", 0) + 1
        trainer = self.trainer
        updates = trainer.global_step // self.optimizer_steps_per_batch
        last = 0 < trainer.max_steps <= trainer.global_step
        if (updates % self.cfg.log_every != 0 and not last) or self.logger is None:
            return
        self._metric_sums = {}
        self.logger.log_metrics(interval_metrics(sums), step=int(self.env_steps))


def interval_metrics(sums: dict[str, Any]) -> dict[str, float]:
    """The ``train/`` metrics of one logging interval from its sums.

    Args:
        sums: per-update sums of the logged parts, plus ``updates`` (the interval's update count),
            ``completed_return`` and ``completed_trials`` (the trials that ended in it).

    Returns:
        each part's mean per update, and ``train/trial_return``: the mean total reward of the
        trials completed in the interval (absent when none completed).
    """
    parts = dict(sums)
    updates = float(parts.pop("updates"))
    trials = float(parts.pop("completed_trials"))
    completed = float(parts.pop("completed_return"))
    metrics = {f"train/{key}": float(value) / updates for key, value in parts.items()}
    if trials > 0:
        metrics["train/trial_return"] = completed / trials
    return metrics


class ModulePolicy:
    """Evaluation policy around a module's ``act``: samples from pi and carries the module's state
    (a hidden state reset at trial starts; empty for a memoryless network)."""

    def __init__(self, module: MetaRLAlgorithm):
        self.module = module

    def begin(self, family: TaskFamily, batch_size: int, generator: torch.Generator) -> None:
        self.state = self.module.initial_state(batch_size)
        self.generator = generator

    def act(self, view: StepView) -> torch.Tensor:
        actions, _, self.state = self.module.act(view, self.state, self.generator)
        return actions


__all__ = [
    "ActorCriticConfig",
    "MetaRLAlgorithm",
    "ModulePolicy",
    "NormalizedCriticConfig",
    "SegmentedActorCriticConfig",
    "check_value_normalization",
    "interval_metrics",
    "mask_state",
    "scheduled",
]
