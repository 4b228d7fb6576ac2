"""Checkpoints: what a run saves so that it can continue or be evaluated, read back safely.

A checkpoint is one ``torch.save`` file of plain data (tensors, numbers, strings, lists, dicts):

- ``format``, ``algorithm`` (a registered name, or ``module:Class`` for a plug-in), ``task``,
  ``task_version`` (the family's :attr:`tasks.TaskFamily.version` when it was written);
- ``config``: the run's resolved config as plain data;
- ``module``: the module's ``state_dict`` (parameters and buffers, the env-step counter among them);
- ``training`` (resumable checkpoints): the optimiser steps taken, the optimisers' states, the
  module's metric sums, the DataModule's state (the trial engine's tasks and states, the hidden
  state carried into the next segment, the action sampler's generator, every global RNG) and the
  training seconds so far.

It is read with ``torch.load(weights_only=True)``, which unpickles no object, so a crafted file
cannot run code. The algorithm it names must be registered; a plug-in class is imported only when
the user names the same ``module:Class`` on the command line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from baselines import MetaRLAlgorithm, get_algorithm_class
from baselines.registry import ALGORITHMS, algorithm_names
from tasks import ConfigError, get_task_class, require

FORMAT = "metarl-bench/checkpoint-1"
ARTIFACT_DIR = "checkpoints"
LAST = "last.ckpt"
"""The resumable checkpoint written during training."""
FINAL = "final.ckpt"
"""The checkpoint of the trained module, written at the end of the run."""


def module_payload(
    algo_name: str, task_name: str, config: Any, module: MetaRLAlgorithm | None
) -> dict:
    """The checkpoint of a module: enough to rebuild and evaluate it (without ``module``, only
    the fixed fields that every checkpoint of the run shares).

    Args:
        algo_name: the algorithm as the run named it.
        task_name: the family trained on.
        config: the run's resolved config (a DictConfig or plain dict).
        module: the trained module.
    """
    plain = OmegaConf.to_container(config, resolve=True) if OmegaConf.is_config(config) else config
    payload = {"format": FORMAT, "algorithm": algo_name, "task": task_name, "config": plain}
    payload["task_version"] = str(get_task_class(task_name).version)
    return payload if module is None else {**payload, "module": module.state_dict()}


def training_state(trainer: pl.Trainer, module: MetaRLAlgorithm, train_seconds: float) -> dict:
    """The ``training`` section of a resumable checkpoint, taken between two updates.

    Args:
        trainer: the running Trainer (its optimisers and optimiser-step count).
        module: the module being trained.
        train_seconds: training time so far, over every resumption.
    """
    return {
        "global_step": int(trainer.global_step),
        "optimizers": [optimizer.state_dict() for optimizer in trainer.optimizers],
        "module": module.training_state(),
        "data": trainer.datamodule.state_dict(),
        "train_seconds": float(train_seconds),
    }


def restore_training(trainer: pl.Trainer, module: MetaRLAlgorithm, state: dict) -> None:
    """Put a Trainer that is starting ``fit`` back where :func:`training_state` was taken.

    The module's parameters and buffers are loaded before ``fit``; the DataModule restores its own
    part when its stream starts.
    """
    progress = trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress.total
    progress.ready = progress.completed = int(state["global_step"])
    for optimizer, saved in zip(trainer.optimizers, state["optimizers"], strict=True):
        module.load_optimizer_state(optimizer, saved)
    module.load_training_state(state["module"])


def write_checkpoint(payload: dict, path: Path) -> Path:
    """Save ``payload`` to ``path`` atomically: a reader, or a kill, never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    os.replace(partial, path)
    return path


def read_checkpoint(path: Path) -> dict:
    """Load a checkpoint without unpickling any object; anything else is a one-line ConfigError.

    Args:
        path: a file written by :func:`write_checkpoint`.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable or unsafe file is the user's bad input
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"'{path}' is not a metarl-bench checkpoint that loads safely (refused: {reason})"
        ) from None
    require(
        isinstance(payload, dict) and payload.get("format") == FORMAT,
        f"'{path}' is not a metarl-bench checkpoint (expected format '{FORMAT}')",
    )
    return payload


def resolve_algorithm(name: str, plugin: str | None = None) -> type[MetaRLAlgorithm]:
    """The class of the algorithm a checkpoint names: registered, or the plug-in the user named.

    Args:
        name: the checkpoint's ``algorithm``.
        plugin: the ``module:Class`` the user named on the command line (``--algorithm``), if any.
    """
    if ":" in name:
        require(
            plugin == name,
            f"the checkpoint names the plug-in algorithm '{name}', which is imported only when "
            f"named on the command line: add --algorithm {name}",
        )
        return get_algorithm_class(name)
    require(
        plugin is None or plugin == name,
        f"--algorithm {plugin} does not match the checkpoint's algorithm '{name}'",
    )
    valid = algorithm_names()
    require(name in ALGORITHMS, f"unknown algorithm '{name}'; valid algorithms: {', '.join(valid)}")
    return ALGORITHMS[name]


def build_from_checkpoint(payload: dict, plugin: str | None = None) -> MetaRLAlgorithm:
    """Rebuild the module a checkpoint holds (its class resolved by :func:`resolve_algorithm`).

    Args:
        payload: from :func:`read_checkpoint`.
        plugin: the ``module:Class`` the user named on the command line, if any.
    """
    cls = resolve_algorithm(str(payload["algorithm"]), plugin)
    config = payload["config"]
    try:
        module = cls(algo=config["algo"], task_name=payload["task"], task=config["task"])
        module.load_state_dict(payload["module"])
    except (KeyError, TypeError, RuntimeError) as error:
        reason = str(error).strip().splitlines()[0]
        raise ConfigError(
            f"the checkpoint does not match algorithm '{cls.name}': {reason}"
        ) from None
    return module


class ResumableCheckpoints(pl.Callback):
    """Writes a resumable checkpoint every ``every`` env steps, and restores one at the start.

    Args:
        payload: the module checkpoint's fixed fields (``module_payload`` without the module).
        every: env steps between checkpoints (0: none).
        path: where the checkpoint is written (replaced each time).
        on_write: called with ``path`` after each write (logs it to the run).
        resume: a checkpoint to continue from, or None.
        extra: called at each write; its plain-data fields join the checkpoint (a sweep worker
            keeps the metrics logged so far there).
    """

    def __init__(
        self,
        payload: dict,
        every: int,
        path: Path | None,
        on_write: Callable[[Path], None] | None = None,
        resume: dict | None = None,
        extra: Callable[[], dict] | None = None,
    ):
        self.payload, self.every, self.path = payload, every, path
        self.on_write, self.resume, self.extra = on_write, resume, extra
        self.offset = float(resume["training"]["train_seconds"]) if resume else 0.0
        self.started = time.perf_counter()
        self.next_at = 0
        self.write_seconds = 0.0
        """Time spent writing and logging checkpoints in this process (their cost)."""

    def train_seconds(self) -> float:
        """Training time so far, over every resumption of the run."""
        return self.offset + time.perf_counter() - self.started

    def on_train_start(self, trainer: pl.Trainer, pl_module: MetaRLAlgorithm) -> None:
        if self.resume is not None:
            restore_training(trainer, pl_module, self.resume["training"])
        self.started = time.perf_counter()
        self.next_at = self._after(int(pl_module.env_steps))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        steps = int(pl_module.env_steps)
        if self.every <= 0 or self.path is None or steps < self.next_at:
            return
        if steps >= self._budget(trainer, pl_module):
            return  # the run is complete: its final checkpoint follows
        self.next_at = self._after(steps)
        began = time.perf_counter()
        payload = {**self.payload, **(self.extra() if self.extra else {})}
        payload["module"] = pl_module.state_dict()
        payload["training"] = training_state(trainer, pl_module, self.train_seconds())
        write_checkpoint(payload, self.path)
        if self.on_write is not None:
            self.on_write(self.path)
        self.write_seconds += time.perf_counter() - began

    def _after(self, steps: int) -> int:
        return (steps // self.every + 1) * self.every if self.every > 0 else 0

    @staticmethod
    def _budget(trainer: pl.Trainer, module: MetaRLAlgorithm) -> int:
        per_update = module.cfg.batch_size * module.rollout_length
        return trainer.max_steps // module.optimizer_steps_per_batch * per_update
