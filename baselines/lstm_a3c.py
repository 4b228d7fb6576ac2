"""LSTM-A3C: asynchronous advantage actor-critic with an LSTM (Mnih et al. 2016; Wang et al. 2016).

The network, act and loss are LSTM-A2C's (:mod:`baselines.lstm_a2c`): an LSTM over
phi(s, a_prev, r_prev, d_prev), n-step returns bootstrapped from the critic (never across a trial
end), the A2C loss. What changes is who learns: ``workers`` actor-learner processes
(:mod:`baselines.async_learner`), each with its own batched environments and a local copy of this
module, play ``t_max`` steps of their own ``batch_size`` trials, compute the loss's gradient on the
local copy, clip it, and apply it to the shared parameters with a shared optimiser at once, without
waiting for any other worker (Hogwild).

LSTM-A2C's options mean the same here: ``normalize_advantages`` (per worker batch),
``policy_init_gain``, ``lr_schedule=linear``, which decays the rate over the run's shared update
counter (Mnih et al. anneal it the same way), and ``normalize_values``: the running moments of the
critic's targets live in shared memory beside the parameters, and each worker pulls them with the
parameters and writes the moments its loss updated back (lock-free; a write may overwrite another
worker's concurrent one, so the moving average then covers fewer batches).

In the Lightning process, :meth:`LSTMA3C.experience` hands the DataModule the workers' progress
reports (one per applied update) in place of rollouts; ``training_step`` counts env steps, logs
metrics against them every ``log_every`` updates, and stops the Trainer when the run's budget of
updates (``trainer.max_steps``, which the runner derives from ``trainer.env_steps``) has been
reported. Training runs on the CPU only (``trainer.accelerator=cpu``): the model lives in shared
memory. Runs are not bit-reproducible: the interleaving of updates depends on the scheduler.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch

from baselines.actor_learner import load_shared_optimizer_state, make_shared_optimizer
from baselines.async_learner import AsyncLearner
from baselines.base import interval_metrics
from baselines.lstm_a2c import RecurrentA2C, RecurrentA2CConfig
from baselines.registry import register_algorithm
from tasks import ConfigError, require


# Config -------------------------------------------------------------------------------------
@dataclass
class LSTMA3CConfig(RecurrentA2CConfig):
    """LSTM-A3C hyperparameters: the recurrent actor-critic's, per worker, plus the workers."""

    workers: int = 2
    """Actor-learner processes (one per core is the sensible maximum)."""
    worker_delays: list[float] = field(default_factory=list)
    """Seconds worker i pauses between computing and applying each gradient (a test hook that
    makes one actor-learner slow; empty means no pauses)."""

    def __post_init__(self):
        super().__post_init__()
        require(self.workers >= 1, f"algo.workers must be >= 1, got {self.workers}")
        require(
            len(self.worker_delays) <= self.workers,
            f"algo.worker_delays has {len(self.worker_delays)} entries for {self.workers} workers",
        )
        require(
            all(delay >= 0 for delay in self.worker_delays),
            f"algo.worker_delays must be >= 0, got {list(self.worker_delays)}",
        )


# The Lightning module -----------------------------------------------------------------------
@register_algorithm
class LSTMA3C(RecurrentA2C):
    """LSTM-A2C's learner run by asynchronous actor-learner processes on a Hogwild shared model.

    The network (:meth:`build_network`), :meth:`act` and :meth:`loss` are LSTM-A2C's; the workers
    call ``act`` and ``loss`` on their local copies.
    """

    name = "lstm-a3c"
    Config = LSTMA3CConfig

    def __init__(self, algo: dict[str, Any], task_name: str, task: dict[str, Any]):
        super().__init__(algo, task_name, task)
        self.learner = AsyncLearner(self.cfg.workers, self.cfg.worker_delays)
        self.worker_updates = [0] * self.cfg.workers
        """Updates each worker has applied so far (from its reports)."""
        self.worker_staleness = [0] * self.cfg.workers
        """The largest staleness of each worker's updates so far."""
        self.worker_cpu_seconds = [0.0] * self.cfg.workers
        """CPU time each worker has spent learning so far (from the release on)."""
        self.reported_updates = 0

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.device.type != "cpu":
            raise ConfigError(
                f"lstm-a3c trains on the CPU only (Hogwild shared memory), got device "
                f"'{self.device}'; set trainer.accelerator=cpu"
            )
        self.network.share_memory()
        for statistic in self.learned_statistics():
            statistic.share_memory_()
        return make_shared_optimizer(
            list(self.network.parameters()), self.cfg.optimizer, self.cfg.lr
        )

    def configure_callbacks(self) -> list[pl.Callback]:
        return [self.learner]  # closes the worker pool however training ends

    def experience(self, seed: int) -> Iterator[dict[str, Any]]:
        """The workers' progress reports, one per applied update, up to the run's budget.

        Args:
            seed: the run's seed (each worker derives its own train stream from it).
        """
        budget = self.trainer.max_steps
        require(budget >= 1, f"lstm-a3c needs a Trainer with max_steps >= 1, got {budget}")
        optimizer = self.trainer.optimizers[0]
        done = self.reported_updates  # non-zero when resumed from a checkpoint
        return self.learner.reports(self, optimizer, seed, budget, done)

    def training_step(self, report: dict[str, Any], batch_idx: int) -> None:
        # The update was applied by a worker; here it is only counted and logged.
        worker = report["worker"]
        self.worker_updates[worker] = report["worker_updates"]
        self.worker_staleness[worker] = max(self.worker_staleness[worker], report["staleness"])
        self.worker_cpu_seconds[worker] = report["cpu_seconds"]
        self.reported_updates += 1
        self.env_steps += report["env_steps"]
        self._accumulate(report)
        last = self.reported_updates >= self.trainer.max_steps
        if self.reported_updates % self.cfg.log_every == 0 or last:
            self._log_progress()
        if last:
            self.trainer.should_stop = True

    def _accumulate(self, report: dict[str, Any]) -> None:
        keys = ("policy_loss", "value_loss", "entropy", "reward_per_step", "staleness")
        for key in (*keys, "completed_return", "completed_trials"):
            self._metric_sums[key] = self._metric_sums.get(key, 0.0) + report[key]
        self._metric_sums["updates"] = self._metric_sums.get("updates", 0) + 1

    def _log_progress(self) -> None:
        sums, self._metric_sums = self._metric_sums, {}
        if self.logger is None:
            return
        metrics = interval_metrics(sums)
        for index, updates in enumerate(self.worker_updates):
            metrics[f"train/updates_worker{index}"] = float(updates)
            metrics[f"train/max_staleness_worker{index}"] = float(self.worker_staleness[index])
        self.logger.log_metrics(metrics, step=int(self.env_steps))

    # Resumable checkpoints ----------------------------------------------------------------
    def training_state(self) -> dict[str, Any]:
        """The base's, plus the updates reported so far and each worker's counters."""
        workers = {
            "updates": list(self.worker_updates),
            "staleness": list(self.worker_staleness),
            "cpu_seconds": list(self.worker_cpu_seconds),
        }
        state = super().training_state()
        return {**state, "reported_updates": self.reported_updates, "workers": workers}

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        """Copy the saved statistics into the shared ones in place (the workers hold them)."""
        load_shared_optimizer_state(optimizer, state)

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`training_state`: the workers claim only the remaining updates."""
        super().load_training_state(state)
        self.reported_updates = int(state["reported_updates"])
        workers = state["workers"]
        self.worker_updates = list(workers["updates"])
        self.worker_staleness = list(workers["staleness"])
        self.worker_cpu_seconds = list(workers["cpu_seconds"])
