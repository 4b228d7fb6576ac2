"""One asynchronous actor-learner: the worker process of :mod:`baselines.async_learner`.

An actor-learner holds a local copy of the algorithm's module and plays its own trials with a
:class:`baselines.rollout.RolloutCollector` (the DataModule's rollout loop) on a train stream of its
own. Each update it pulls the shared parameters (and the module's shared learned statistics, such
as the critic's running moments) into the local copy, collects ``t_max`` steps, back-propagates the
module's ``loss`` on the local copy, clips the gradient and applies it to the shared parameters
with the shared optimiser (:func:`make_shared_optimizer`), lock-free, and writes the statistics
its loss updated back.
"""

from __future__ import annotations

import copy
import hashlib
import os
import signal
import time
import traceback
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from baselines.base import MetaRLAlgorithm, scheduled
from baselines.rollout import RolloutCollector


# Shared optimiser ---------------------------------------------------------------------------
def make_shared_optimizer(
    params: list[nn.Parameter], name: str, lr: float
) -> torch.optim.Optimizer:
    """RMSProp or Adam whose statistics and step counters are created eagerly in shared memory.

    Workers receive this optimiser with the shared module, so every worker's ``step()`` updates
    the same statistics in place (Mnih et al.'s shared RMSProp).

    Args:
        params: parameters already in shared memory.
        name: ``rmsprop`` or ``adam``.
        lr: learning rate.
    """
    if name == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr, foreach=False)
        buffers = ("exp_avg", "exp_avg_sq")
    else:
        optimizer = torch.optim.RMSprop(params, lr=lr, alpha=0.99, eps=1e-5, foreach=False)
        buffers = ("square_avg",)
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state[param]
            state["step"] = torch.zeros(()).share_memory_()
            for key in buffers:
                state[key] = torch.zeros_like(param).share_memory_()
    return optimizer


def load_shared_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Copy a saved ``state_dict``'s statistics into the shared ones in place: the workers hold
    those very tensors, and ``load_state_dict`` would replace them with private copies.

    Args:
        optimizer: from :func:`make_shared_optimizer`.
        state: its ``state_dict`` from a checkpoint.
    """
    params = [param for group in optimizer.param_groups for param in group["params"]]
    for index, param in enumerate(params):
        for key, value in state["state"][index].items():
            optimizer.state[param][key].copy_(value)


# The actor-learner process ------------------------------------------------------------------
@dataclass
class WorkerContext:
    """Everything one actor-learner needs; pickled once when its process is spawned."""

    index: int
    seed: int
    module: MetaRLAlgorithm
    optimizer: torch.optim.Optimizer
    reports: Any
    start: Any
    stop: Any
    claimed: Any
    applied: Any
    budget: int
    parent_pid: int
    delay: float = 0.0
    """Seconds this worker pauses between computing and applying each gradient (a test hook)."""

    def should_continue(self) -> bool:
        """False once a stop is requested or the Lightning process is gone (even SIGKILLed)."""
        return not self.stop.is_set() and os.getppid() == self.parent_pid


def worker_seed(algorithm: str, seed: int, index: int) -> int:
    """The seed of worker ``index``'s train stream and action sampling, derived from the run's.

    Args:
        algorithm: the algorithm's registered name.
        seed: the run's seed.
        index: the worker's index.
    """
    digest = hashlib.sha256(f"{algorithm}:{seed}:worker:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def worker_main(ctx: WorkerContext) -> None:
    """Entry point of an actor-learner process: learn until the budget is claimed or told to stop.

    Args:
        ctx: the worker's context (shared module, optimiser, counters and queues).
    """
    # Ctrl-C reaches the whole process group; the Lightning process decides how to shut down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    try:
        seed = worker_seed(ctx.module.name, ctx.seed, ctx.index)
        torch.manual_seed(seed)
        learner = ActorLearner(ctx, seed)
        ctx.reports.put({"kind": "ready", "worker": ctx.index})
        while not ctx.start.wait(0.1):
            if not ctx.should_continue():
                return
        learner.run()
    except BaseException:
        ctx.reports.put({"kind": "error", "worker": ctx.index, "traceback": traceback.format_exc()})
        raise
    finally:
        if not ctx.should_continue():
            # Nobody reads the queue any more: exit without waiting to flush it.
            ctx.reports.cancel_join_thread()


class ActorLearner:
    """One worker's local module, rollout collector and update loop.

    Args:
        ctx: the worker's context.
        seed: the worker's own seed (:func:`worker_seed`).
    """

    def __init__(self, ctx: WorkerContext, seed: int):
        self.ctx = ctx
        self.shared = list(ctx.module.parameters())
        held = [p for group in ctx.optimizer.param_groups for p in group["params"]]
        if [id(p) for p in held] != [id(p) for p in self.shared]:
            raise RuntimeError("the shared optimiser does not hold the shared module's parameters")
        self.local = copy.deepcopy(ctx.module)
        self.statistics = list(
            zip(self.local.learned_statistics(), ctx.module.learned_statistics(), strict=True)
        )
        self.collector = RolloutCollector(self.local, seed)
        self.updates = 0
        self.cpu_started = 0.0

    def run(self) -> None:
        """Claim, compute and apply updates until the budget is spent or a stop is requested."""
        cfg = self.local.cfg
        self.cpu_started = time.process_time()
        while (claimed := self._claim_update()) is not None:
            version = self._pull()
            segment = self.collector.collect(self.local.rollout_length)
            loss, parts = self.local.loss(segment)
            self.local.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.local.parameters(), cfg.grad_clip)
            if self.ctx.delay:
                self.ctx.stop.wait(self.ctx.delay)
            lr = scheduled(cfg.lr, cfg.lr_schedule, claimed, self.ctx.budget)
            staleness = self._push(version, lr)
            self.updates += 1
            self.ctx.reports.put(self._report(segment, parts, staleness))

    def _claim_update(self) -> int | None:
        """Take the next of the run's updates from the shared counter: its index, or None."""
        ctx = self.ctx
        if not ctx.should_continue():
            return None
        with ctx.claimed.get_lock():
            if ctx.claimed.value >= ctx.budget:
                return None
            ctx.claimed.value += 1
            return ctx.claimed.value - 1

    def _pull(self) -> int:
        """Copy the shared parameters into the local module; return how many updates they hold."""
        with self.ctx.applied.get_lock():
            version = self.ctx.applied.value
        with torch.no_grad():
            for local, shared in zip(self.local.parameters(), self.shared, strict=True):
                local.copy_(shared)
            for local, shared in self.statistics:
                local.copy_(shared)
        return version

    def _push(self, version: int, lr: float) -> int:
        """Apply the local gradient to the shared parameters at rate ``lr`` (no lock: Hogwild).

        Returns the staleness: updates by other workers applied since this worker's pull.
        """
        for local, shared in zip(self.local.parameters(), self.shared, strict=True):
            shared.grad = local.grad
        with torch.no_grad():
            for local, shared in self.statistics:  # the moments this worker's loss updated
                shared.copy_(local)
        for group in self.ctx.optimizer.param_groups:  # this process's copy of the settings
            group["lr"] = lr
        self.ctx.optimizer.step()
        with self.ctx.applied.get_lock():
            self.ctx.applied.value += 1
            position = self.ctx.applied.value - 1
        return position - version

    def _report(self, segment: dict[str, Any], parts: dict[str, torch.Tensor], staleness: int):
        return {
            "kind": "update",
            "worker": self.ctx.index,
            "worker_updates": self.updates,
            "staleness": staleness,
            "cpu_seconds": time.process_time() - self.cpu_started,
            "env_steps": segment["env_steps"],
            "reward_per_step": float(segment["rewards"].mean()),
            "completed_return": float(segment["completed_return"]),
            "completed_trials": float(segment["completed_trials"]),
            **{key: float(value) for key, value in parts.items()},
        }
