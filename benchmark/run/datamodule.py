"""MetaRLDataModule: samples MDPs per trial and yields rollouts of the current policy.

The module being trained is the policy: the DataModule reaches it through ``self.trainer`` and
collects ``t_max`` steps of B parallel trials under ``no_grad`` with
:class:`baselines.rollout.RolloutCollector` (with ``num_workers=0``, in the training process).

An algorithm that gathers its own experience says so through
:meth:`baselines.base.MetaRLAlgorithm.experience` (LSTM-A3C, whose actor-learner processes act
and learn on their own); the DataModule then yields that stream instead of collecting rollouts.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader, IterableDataset

from baselines.rollout import RolloutCollector
from benchmark.run.rng import rng_states, set_rng_states

ENDLESS = 2**62
"""The stream's nominal length: the Trainer's ``max_steps`` ends training long before."""

# Lightning warns that a sized IterableDataset may repeat data across loader worker processes;
# rollouts are collected in the training process (num_workers=0), so the warning never applies.
warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined")


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
        own = module.experience(datamodule.seed)
        if own is not None:
            yield from own
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
        algorithm that gathers its own ``experience``)."""

    def state_dict(self) -> dict[str, Any]:
        """The stream's state between two batches: the collector's and every RNG's."""
        state: dict[str, Any] = {"rng": rng_states()}
        if self.collector is not None:
            state["collector"] = self.collector.state_dict()
        return state

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_RolloutStream(self), batch_size=None, num_workers=0)
