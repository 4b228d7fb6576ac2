"""LSTM-A3C: asynchronous advantage actor-critic with an LSTM (Mnih et al. 2016; Wang et al. 2016).

The network, loss and update are LSTM-A2C's (:mod:`baselines.lstm_a2c`): an LSTM over
phi(s, a_prev, r_prev, d_prev), n-step returns bootstrapped from the critic (never across a trial
end), the A2C loss. What changes is who learns: ``workers`` actor-learner processes, each with its
own batched environments (a :class:`tasks.TrialEngine` on its own train stream) and a local copy of
the network, which

1. copy the shared parameters into the local network (they may be stale by the time they are used);
2. play ``t_max`` steps of their own ``batch_size`` trials, carrying the hidden state across
   segments and zeroing it only at trial boundaries;
3. compute the n-step A2C gradient on the local copy, clip it, and apply it to the shared
   parameters with the shared optimiser at once, without waiting for any other worker.

LSTM-A2C's options mean the same here: ``normalize_advantages`` (per worker batch),
``policy_init_gain``, and ``lr_schedule=linear``, which decays the rate over the run's shared
update counter (Mnih et al. anneal it the same way). LSTM-A2C's ``normalize_values`` is not among
them: the workers' critics regress raw returns.

Design choices
--------------
*Hogwild shared memory, not a parameter server.* The network's parameters and the optimiser's
statistics (RMSProp's running mean square, or Adam's moments, and the per-parameter ``step``
counters) live in shared memory; each worker applies its own updates lock-free, as Mnih et al.
did with their shared RMSProp (Recht et al. 2011 for why lock-free updates are fine). A parameter
server inside the Lightning process would move every gradient and every new set of weights through
a pipe and apply all updates in one process, which competes for the same cores as the workers (the
reference machine has two) and turns the Lightning process into the serial bottleneck. With
Hogwild the Lightning process only sleeps on a queue. Because the module's ``network`` *is* the
shared model, Lightning's checkpoint, the evaluation policy (``make_policy``) and the logged
metrics see the latest parameters with no copy step. The price: training runs on the CPU only
(``trainer.accelerator=cpu``), and concurrent updates may interleave (accepted by Hogwild).

*Fitting Lightning.* The Trainer still runs ``fit`` with the suite's DataModule; this module
provides ``training_stream(seed)``, which the DataModule yields instead of on-policy rollouts: the
stream starts the workers, waits until all are ready, releases them together and yields their
progress reports (one per applied update). ``training_step`` consumes a report: it counts env
steps, logs metrics against them every ``log_every`` updates, and stops the Trainer when the
run's budget of updates (``trainer.max_steps``, which the runner derives from
``trainer.env_steps``) has been reported. Workers claim updates from a shared counter, so together
they apply exactly that many.

*Shutdown.* Workers are daemon processes started with the ``spawn`` context. A callback from
``configure_callbacks`` closes the pool on train end, on any exception in the Lightning process
(including Ctrl-C, which Lightning turns into a graceful shutdown, and SIGTERM, after which it
stops at the end of the current step) and at teardown; the stream's
``finally`` and multiprocessing's exit handler are further nets. Closing sets a stop event, drains
the report queue while joining with a timeout, then terminates and finally kills stragglers. A
worker ignores SIGINT (the terminal sends it to the whole process group; the Lightning process
decides), reports its own exception with its traceback (re-raised in the Lightning process as
:class:`WorkerError`), and exits when its parent disappears (even a SIGKILLed one). Each worker
runs ``torch.set_num_threads(1)``: parallelism comes from processes, one per core.

Runs are not bit-reproducible: the interleaving of updates depends on the scheduler.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import queue
import signal
import time
import traceback
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
import torch.multiprocessing as mp
from torch import nn

from baselines.base import MetaRLAlgorithm
from baselines.losses import a2c_loss, lambda_returns
from baselines.lstm_a2c import RecurrentA2CConfig
from baselines.networks import RecurrentActorCritic, RecurrentState
from baselines.registry import register_algorithm
from tasks import ConfigError, TaskFamily, TrialEngine, require, step_record, task_generator

START_TIMEOUT_S = 120.0
"""How long the Lightning process waits for every worker to import and report ready."""
JOIN_TIMEOUT_S = 5.0
"""How long closing waits for workers to stop by themselves before terminating them."""


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


class WorkerError(RuntimeError):
    """An actor-learner process failed; the message carries its traceback."""


# Shared optimiser ---------------------------------------------------------------------------
def make_shared_optimizer(
    params: list[nn.Parameter], name: str, lr: float
) -> torch.optim.Optimizer:
    """RMSProp or Adam whose statistics and step counters are created eagerly in shared memory.

    Workers receive this optimiser with the shared network, so every worker's ``step()`` updates
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


# The actor-learner process ------------------------------------------------------------------
@dataclass
class WorkerContext:
    """Everything one actor-learner needs; pickled once when its process is spawned."""

    index: int
    seed: int
    cfg: LSTMA3CConfig
    family: TaskFamily
    rollout_steps: int
    network: RecurrentActorCritic
    optimizer: torch.optim.Optimizer
    reports: Any
    start: Any
    stop: Any
    claimed: Any
    applied: Any
    budget: int
    parent_pid: int

    @property
    def delay(self) -> float:
        """This worker's pause between computing and applying a gradient."""
        delays = self.cfg.worker_delays
        return float(delays[self.index]) if self.index < len(delays) else 0.0

    def should_continue(self) -> bool:
        """False once a stop is requested or the Lightning process is gone (even SIGKILLed)."""
        return not self.stop.is_set() and os.getppid() == self.parent_pid


def worker_seed(seed: int, index: int) -> int:
    """The seed of worker ``index``'s train stream and action sampling, derived from the run's.

    Args:
        seed: the run's seed.
        index: the worker's index.
    """
    digest = hashlib.sha256(f"lstm-a3c:{seed}:worker:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def scheduled_lr(cfg: LSTMA3CConfig, update: int, budget: int) -> float:
    """The learning rate of the run's ``update``-th update (counted over all workers).

    Args:
        cfg: the config (``lr`` and ``lr_schedule``: constant, or linear decay to 0 over the
            budget, as in LSTM-A2C and Mnih et al.).
        update: index of the update, from the shared counter.
        budget: updates in the whole run.
    """
    if cfg.lr_schedule == "linear":
        return cfg.lr * max(0.0, 1.0 - update / budget)
    return cfg.lr


def worker_main(ctx: WorkerContext) -> None:
    """Entry point of an actor-learner process: learn until the budget is claimed or told to stop.

    Args:
        ctx: the worker's context (shared network, optimiser, counters and queues).
    """
    # Ctrl-C reaches the whole process group; the Lightning process decides how to shut down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    try:
        seed = worker_seed(ctx.seed, ctx.index)
        torch.manual_seed(seed)
        learner = _ActorLearner(ctx, seed)
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


class _ActorLearner:
    """One worker's environments, local network and update loop."""

    def __init__(self, ctx: WorkerContext, seed: int):
        self.ctx = ctx
        batch = ctx.cfg.batch_size
        self.local = copy.deepcopy(ctx.network)
        held = [p for group in ctx.optimizer.param_groups for p in group["params"]]
        if [id(p) for p in held] != [id(p) for p in ctx.network.parameters()]:
            raise RuntimeError("the shared optimiser does not hold the shared network's parameters")
        self.engine = TrialEngine(ctx.family, batch, task_generator(seed, "train"))
        self.engine.start()
        self.action_generator = torch.Generator().manual_seed(seed)
        self.state: RecurrentState = self.local.initial_state(batch, "cpu")
        self.running_return = torch.zeros(batch)
        self.updates = 0
        self.cpu_started = 0.0

    def run(self) -> None:
        """Claim, compute and apply updates until the budget is spent or a stop is requested."""
        self.cpu_started = time.process_time()
        while (claimed := self._claim_update()) is not None:
            version = self._pull()
            segment = self._rollout()
            loss, parts = self._loss(segment)
            self.local.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.local.parameters(), self.ctx.cfg.grad_clip)
            if self.ctx.delay:
                self.ctx.stop.wait(self.ctx.delay)
            lr = scheduled_lr(self.ctx.cfg, claimed, self.ctx.budget)
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
        """Copy the shared parameters into the local network; return how many updates they hold."""
        with self.ctx.applied.get_lock():
            version = self.ctx.applied.value
        with torch.no_grad():
            for local, shared in zip(
                self.local.parameters(), self.ctx.network.parameters(), strict=True
            ):
                local.copy_(shared)
        return version

    def _push(self, version: int, lr: float) -> int:
        """Apply the local gradient to the shared parameters at rate ``lr`` (no lock: Hogwild).

        Returns the staleness: updates by other workers applied since this worker's pull.
        """
        for local, shared in zip(
            self.local.parameters(), self.ctx.network.parameters(), strict=True
        ):
            shared.grad = local.grad
        for group in self.ctx.optimizer.param_groups:  # this process's copy of the settings
            group["lr"] = lr
        self.ctx.optimizer.step()
        with self.ctx.applied.get_lock():
            self.ctx.applied.value += 1
            position = self.ctx.applied.value - 1
        return position - version

    @torch.no_grad()
    def _rollout(self) -> dict[str, Any]:
        """Play ``t_max`` steps of this worker's trials with the local network."""
        engine, h0 = self.engine, self.state
        steps: dict[str, list[torch.Tensor]] = defaultdict(list)
        completed_return, completed_trials = torch.zeros(()), torch.zeros(())
        for _ in range(self.ctx.rollout_steps):
            view = engine.view
            logits, _, self.state = self.local.step(view.phi, self.state, view.reset_if_any)
            actions = self.local.sample_action(logits, self.action_generator)
            transition, _ = engine.step(actions)
            stored = self.local.replay_fields(self.state)
            for key, value in {**step_record(view, actions, transition), **stored}.items():
                steps[key].append(value)
            total = self.running_return + transition.reward
            completed_return += (total * transition.trial_done).sum()
            completed_trials += transition.trial_done.sum()
            self.running_return = total * ~transition.trial_done
        segment: dict[str, Any] = {k: torch.stack(v) for k, v in steps.items()}
        segment.update(
            h0=h0,
            phi_last=engine.view.phi,
            reset_last=engine.view.reset,
            completed_return=completed_return,
            completed_trials=completed_trials,
        )
        return segment

    def _loss(self, segment: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """LSTM-A2C's loss on the local network, which played the segment: its LSTM outputs are
        the stored states, differentiated by BPTT from them (the GRU core recomputes them)."""
        cfg = self.ctx.cfg
        logits, values, bootstrap = self.local.rerun(segment, current=True)
        returns = lambda_returns(
            segment["rewards"],
            values.detach(),
            segment["trial_done"],
            bootstrap,
            cfg.gamma,
            cfg.gae_lambda,
        )
        return a2c_loss(
            self.local.distribution(logits),
            values,
            segment["actions"],
            returns,
            cfg.value_coef,
            cfg.entropy_coef,
            cfg.normalize_advantages,
        )

    def _report(self, segment: dict[str, Any], parts: dict[str, torch.Tensor], staleness: int):
        return {
            "kind": "update",
            "worker": self.ctx.index,
            "worker_updates": self.updates,
            "staleness": staleness,
            "cpu_seconds": time.process_time() - self.cpu_started,
            "env_steps": segment["rewards"].numel(),
            "reward_per_step": float(segment["rewards"].mean()),
            "completed_return": float(segment["completed_return"]),
            "completed_trials": float(segment["completed_trials"]),
            **{key: float(value) for key, value in parts.items()},
        }


# The pool, seen from the Lightning process --------------------------------------------------
class WorkerPool:
    """Starts the actor-learners, hands out their reports and shuts them down for sure.

    Args:
        network: the shared network (already in shared memory).
        optimizer: the shared optimiser over its parameters.
        cfg: the algorithm's config.
        family: the task family.
        rollout_steps: t_max.
        seed: the run's seed.
        budget: updates to apply in total, over all workers.
        done: updates already applied (a run resumed from a checkpoint); the workers claim the
            rest, and the learning-rate schedule continues from there.
    """

    def __init__(
        self,
        network: RecurrentActorCritic,
        optimizer: torch.optim.Optimizer,
        cfg: LSTMA3CConfig,
        family: TaskFamily,
        rollout_steps: int,
        seed: int,
        budget: int,
        done: int = 0,
    ):
        self.mp = mp.get_context("spawn")
        self.reports = self.mp.Queue()
        self.start_event, self.stop_event = self.mp.Event(), self.mp.Event()
        self.claimed, self.applied = self.mp.Value("q", done), self.mp.Value("q", done)
        shared = {
            "seed": seed,
            "cfg": cfg,
            "family": family,
            "rollout_steps": rollout_steps,
            "network": network,
            "optimizer": optimizer,
            "reports": self.reports,
            "start": self.start_event,
            "stop": self.stop_event,
            "claimed": self.claimed,
            "applied": self.applied,
            "budget": budget,
            "parent_pid": os.getpid(),
        }
        self.contexts = [WorkerContext(index=i, **shared) for i in range(cfg.workers)]
        self.processes: list[Any] = []
        self.closed = False

    def start(self) -> None:
        """Spawn every worker, wait until all are ready, then release them together."""
        for ctx in self.contexts:
            process = self.mp.Process(
                target=worker_main, args=(ctx,), name=f"lstm-a3c-worker-{ctx.index}", daemon=True
            )
            process.start()
            self.processes.append(process)
        ready: set[int] = set()
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(ready) < len(self.contexts):
            ready.add(self.next_report(deadline)["worker"])
        self.start_event.set()

    def next_report(self, deadline: float | None = None) -> dict[str, Any]:
        """The next report from any worker; raises :class:`WorkerError` if a worker failed.

        Args:
            deadline: ``time.monotonic()`` after which waiting is an error (None: no limit).
        """
        quiet_since_all_exited = 0
        while True:
            try:
                report = self.reports.get(timeout=0.2)
            except queue.Empty:
                if deadline is not None and time.monotonic() > deadline:
                    raise WorkerError("lstm-a3c workers did not report in time") from None
                quiet_since_all_exited = quiet_since_all_exited + 1 if self._all_exited() else 0
                if quiet_since_all_exited > 1:
                    raise WorkerError(
                        "lstm-a3c workers stopped before the budget was spent"
                    ) from None
                continue
            if report["kind"] == "error":
                lines = report["traceback"].strip().splitlines()
                raise WorkerError(
                    f"lstm-a3c worker {report['worker']} failed: {lines[-1]}\n{report['traceback']}"
                )
            return report

    def _all_exited(self) -> bool:
        """True when every worker has exited cleanly; raises if one died with an error code."""
        for index, process in enumerate(self.processes):
            if process.exitcode not in (None, 0):
                raise WorkerError(f"lstm-a3c worker {index} died with exit code {process.exitcode}")
        return all(process.exitcode == 0 for process in self.processes)

    def close(self) -> None:
        """Stop every worker: ask, wait while draining reports, then terminate, then kill."""
        if self.closed:
            return
        self.closed = True
        self.stop_event.set()
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while any(p.is_alive() for p in self.processes) and time.monotonic() < deadline:
            # A worker exits only once what it put on the queue is flushed: keep draining.
            with contextlib.suppress(queue.Empty):
                self.reports.get(timeout=0.05)
        for process in self.processes:
            if process.is_alive():
                process.terminate()
                process.join(1.0)
            if process.is_alive():
                process.kill()
            process.join()
        self.reports.close()
        self.reports.cancel_join_thread()


class _ShutdownWorkers(pl.Callback):
    """Closes the module's worker pool whenever training ends, normally or not."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: LSTMA3C) -> None:
        pl_module.close_workers()

    def on_exception(self, trainer: pl.Trainer, pl_module: LSTMA3C, exception: BaseException):
        pl_module.close_workers()

    def teardown(self, trainer: pl.Trainer, pl_module: LSTMA3C, stage: str) -> None:
        pl_module.close_workers()


# The Lightning module -----------------------------------------------------------------------
@register_algorithm
class LSTMA3C(MetaRLAlgorithm):
    """LSTM-A2C's learner run by asynchronous actor-learner processes on a Hogwild shared model."""

    name = "lstm-a3c"
    Config = LSTMA3CConfig

    def __init__(self, algo: dict[str, Any], task_name: str, task: dict[str, Any]):
        super().__init__(algo, task_name, task)
        self.pool: WorkerPool | None = None
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
        return make_shared_optimizer(
            list(self.network.parameters()), self.cfg.optimizer, self.cfg.lr
        )

    def configure_callbacks(self) -> list[pl.Callback]:
        return [_ShutdownWorkers()]

    def training_stream(self, seed: int) -> Iterator[dict[str, Any]]:
        """Start the workers and yield one progress report per applied update, up to the budget.

        Called by :class:`benchmark.datamodule.MetaRLDataModule` in place of on-policy rollouts.

        Args:
            seed: the run's seed (each worker derives its own train stream from it).
        """
        budget = self.trainer.max_steps
        require(budget >= 1, f"lstm-a3c needs a Trainer with max_steps >= 1, got {budget}")
        optimizer = self.trainer.optimizers[0]
        done = self.reported_updates  # non-zero when resumed from a checkpoint
        self.pool = WorkerPool(
            self.network, optimizer, self.cfg, self.family, self.rollout_length, seed, budget, done
        )
        try:
            self.pool.start()
            for _ in range(budget - done):
                yield self.pool.next_report()
        finally:
            self.close_workers()

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
        """Copy the saved statistics into the shared ones in place: the workers hold those very
        tensors, and ``load_state_dict`` would replace them with private copies."""
        params = [param for group in optimizer.param_groups for param in group["params"]]
        for index, param in enumerate(params):
            for key, value in state["state"][index].items():
                optimizer.state[param][key].copy_(value)

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`training_state`: the workers claim only the remaining updates."""
        super().load_training_state(state)
        self.reported_updates = int(state["reported_updates"])
        workers = state["workers"]
        self.worker_updates = list(workers["updates"])
        self.worker_staleness = list(workers["staleness"])
        self.worker_cpu_seconds = list(workers["cpu_seconds"])

    def close_workers(self) -> None:
        """Shut the worker processes down (idempotent)."""
        if self.pool is not None:
            self.pool.close()

    def training_step(self, report: dict[str, Any], batch_idx: int) -> None:
        # The update was applied by a worker; here it is only counted and logged.
        worker = report["worker"]
        self.worker_updates[worker] = report["worker_updates"]
        self.worker_staleness[worker] = max(self.worker_staleness[worker], report["staleness"])
        self.worker_cpu_seconds[worker] = report["cpu_seconds"]
        self.reported_updates += 1
        self.env_steps += report["env_steps"]
        self._accumulate(report)
        if self.reported_updates % self.cfg.log_every == 0:
            self._log_progress()
        if self.reported_updates >= self.trainer.max_steps:
            self.trainer.should_stop = True

    def _accumulate(self, report: dict[str, Any]) -> None:
        keys = ("policy_loss", "value_loss", "entropy", "reward_per_step", "staleness")
        for key in (*keys, "completed_return", "completed_trials"):
            self._metric_sums[key] = self._metric_sums.get(key, 0.0) + report[key]

    def _log_progress(self) -> None:
        sums, self._metric_sums = self._metric_sums, {}
        if self.logger is None:
            return
        trials = sums.pop("completed_trials")
        completed = sums.pop("completed_return")
        metrics = {f"train/{key}": value / self.cfg.log_every for key, value in sums.items()}
        if trials > 0:
            metrics["train/trial_return"] = completed / trials
        for index, updates in enumerate(self.worker_updates):
            metrics[f"train/updates_worker{index}"] = float(updates)
            metrics[f"train/max_staleness_worker{index}"] = float(self.worker_staleness[index])
        self.logger.log_metrics(metrics, step=int(self.env_steps))
