"""MetaRLDataModule: samples MDPs per trial and yields rollouts of the current policy.

The module being trained is the policy: the DataModule reaches it through ``self.trainer`` and
collects ``t_max`` steps of B parallel trials under ``no_grad`` (with ``num_workers=0``, in the
training process). The hidden state carries from one segment to the next (it was computed without
gradients, so it is already detached) and is zeroed only at trial boundaries by the trial engine's
mask.

An algorithm that gathers its own experience defines ``training_stream(seed)`` (LSTM-A3C, whose
actor-learner processes act and learn on their own); the DataModule then yields that stream (its
progress reports) instead of collecting rollouts.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from baselines.base import MetaRLAlgorithm
from benchmark.rng import rng_states, set_rng_states
from tasks import TrialEngine, step_record, task_generator

ENDLESS = 2**62
"""The stream's nominal length: the Trainer's ``max_steps`` ends training long before."""

# Lightning warns that a sized IterableDataset may repeat data across loader worker processes;
# rollouts are collected in the training process (num_workers=0), so the warning never applies.
warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined")


class RolloutCollector:
    """Plays B parallel trials with a module's ``act`` and packs segments for its update.

    Args:
        module: the algorithm being trained.
        seed: the run's seed (training tasks come from its ``train`` stream).
    """

    def __init__(self, module: MetaRLAlgorithm, seed: int):
        self.module = module
        device = module.device
        self.engine = TrialEngine(
            module.family, module.cfg.batch_size, task_generator(seed, "train", device)
        )
        self.action_generator = torch.Generator(device=device)
        self.action_generator.manual_seed(seed)
        self.engine.start()
        self.state = module.initial_state(module.cfg.batch_size)
        self.running_return = torch.zeros(module.cfg.batch_size, device=device)

    @torch.no_grad()
    def collect(self, steps: int) -> dict[str, Any]:
        """Play ``steps`` steps and return the segment as tensors with time leading."""
        module, engine = self.module, self.engine
        h0 = self.state
        records: dict[str, list[torch.Tensor]] = defaultdict(list)
        storage = module.rollout_storage(steps, engine.batch_size)  # filled in place, row t at t
        by_step = zip(*storage.values(), strict=True)  # each tensor's rows, step by step
        rows = [dict(zip(storage, step_rows, strict=True)) for step_rows in by_step]
        for t in range(steps):
            view = engine.view
            record = rows[t] if rows else {}
            actions, extra, self.state = module.act(view, self.state, self.action_generator, record)
            transition, _ = engine.step(actions)
            for key, value in {**step_record(view, actions, transition), **extra}.items():
                records[key].append(value)
        batch: dict[str, Any] = {k: torch.stack(v) for k, v in records.items()}
        batch.update(storage)
        # The last state is a view of the storage: a copy lets the segment's storage go with it.
        self.state = tuple(part.clone() for part in self.state)
        batch.update(h0=h0, phi_last=engine.view.phi, reset_last=engine.view.reset)
        batch.update(state_last=self.state, policy_version=module.policy_version)
        batch.update(env_steps=steps * engine.batch_size, **self._completed_trials(batch))
        return batch

    def state_dict(self) -> dict[str, Any]:
        """The collector between two segments: the trial engine, the action sampler's generator,
        the hidden state carried into the next segment and the running trial returns."""
        return {
            "engine": self.engine.state_dict(),
            "action_generator": self.action_generator.get_state(),
            "hidden": tuple(self.state),
            "running_return": self.running_return,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (a collector of the same module and seed)."""
        device = self.module.device
        self.engine.load_state_dict(state["engine"])
        self.action_generator.set_state(state["action_generator"])
        self.state = tuple(part.to(device) for part in state["hidden"])
        self.running_return = state["running_return"].to(device)

    def _completed_trials(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Total reward of the trials that ended in this segment (for the training curve).

        Computed once per segment, not per step: the cumulative reward (carried over from earlier
        segments) at each trial end, minus the cumulative reward at the slot's previous trial end.
        """
        rewards, done = batch["rewards"], batch["trial_done"]
        cumulative = self.running_return + rewards.cumsum(0)
        padded = torch.cat([torch.zeros_like(cumulative[:1]), cumulative])
        steps = torch.arange(1, len(rewards) + 1, device=rewards.device).unsqueeze(1)
        last_end = torch.cummax(done * steps, 0).values  # 1 + index of the latest end, 0 if none
        previous_end = torch.cat([torch.zeros_like(last_end[:1]), last_end[:-1]])
        trial_totals = cumulative - padded.gather(0, previous_end)
        self.running_return = cumulative[-1] - padded.gather(0, last_end[-1:])[0]
        return {"completed_return": (trial_totals * done).sum(), "completed_trials": done.sum()}


class _RolloutStream(IterableDataset):
    """The endless rollout stream, with a length so that Lightning fetches one batch at a time.

    Without ``__len__``, Lightning's fetcher collects the next rollout before the current update
    (to detect the end of an unsized stream), so every rollout would be played by the policy one
    update old. With a length the fetch happens when the batch is consumed, after the previous
    update, and the rollout is on-policy (``policy_version`` checks it).
    """

    def __init__(self, datamodule: MetaRLDataModule):
        self.datamodule = datamodule

    def __len__(self) -> int:
        return ENDLESS

    def __iter__(self) -> Iterator[dict[str, Any]]:
        datamodule = self.datamodule
        module = datamodule.trainer.lightning_module
        if hasattr(module, "training_stream"):
            yield from module.training_stream(datamodule.seed)
            return
        collector = RolloutCollector(module, datamodule.seed)
        datamodule.collector = collector
        if datamodule.resume is not None:
            # Restored here, after the DataLoader drew its base seed from the global generator,
            # so that the global RNG continues exactly where the checkpointed run left it.
            collector.load_state_dict(datamodule.resume["collector"])
            set_rng_states(datamodule.resume["rng"])
        while True:
            yield collector.collect(module.rollout_length)


class MetaRLDataModule(pl.LightningDataModule):
    """Yields an endless stream of on-policy rollout segments; the Trainer's ``max_steps`` ends it.

    Args:
        seed: the run's seed; training tasks come from its ``train`` stream.
        resume: the ``data`` section of a resumable checkpoint, or None to start afresh.
    """

    def __init__(self, seed: int, resume: dict[str, Any] | None = None):
        super().__init__()
        self.seed = seed
        self.resume = resume
        """A checkpoint's ``data`` section to continue from (its collector and RNG states)."""
        self.collector: RolloutCollector | None = None
        """The collector of the running stream (None before the first batch, and for an
        algorithm with its own ``training_stream``)."""

    def state_dict(self) -> dict[str, Any]:
        """The stream's state between two batches: the collector's and every RNG's."""
        state: dict[str, Any] = {"rng": rng_states()}
        if self.collector is not None:
            state["collector"] = self.collector.state_dict()
        return state

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_RolloutStream(self), batch_size=None, num_workers=0)
