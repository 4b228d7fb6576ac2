"""The rollout loop: B parallel trials played with a module's ``act``, ``t_max`` steps at a time.

One loop serves every learned algorithm: :class:`benchmark.run.datamodule.MetaRLDataModule` collects
on-policy segments with it in the training process, and each actor-learner of
:mod:`baselines.async_learner` collects its own with its local copy of the module.

The hidden state carries from one segment to the next (it was computed without gradients, so it is
already detached) and is zeroed only at trial boundaries by the trial engine's mask.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import torch

from tasks import TrialEngine, step_record, task_generator

if TYPE_CHECKING:
    from baselines.base import MetaRLAlgorithm


class RolloutCollector:
    """Plays B parallel trials with a module's ``act`` and packs segments for its update.

    Args:
        module: the algorithm that acts (its ``family``, ``cfg.batch_size``, ``act``,
            ``initial_state``, ``rollout_storage`` and ``policy_version``).
        seed: the seed of the training tasks (its ``train`` stream) and of the action sampling.
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
