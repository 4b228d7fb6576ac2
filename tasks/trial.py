"""The trial engine: the one place that knows trial semantics.

A trial is one sampled MDP played for ``episodes_per_trial`` episodes. The engine

- builds phi(s_t, a_{t-1}, r_{t-1}, d_{t-1}), the recurrent policy's input;
- counts episodes within each trial;
- draws a new MDP for a slot when its trial ends;
- exposes ``reset``: True on the first step of a trial, and only there. Policies zero their hidden
  state where ``reset`` is True. An episode boundary inside a trial sets d = 1 in phi but does NOT
  reset the hidden state: that is how a meta-learner carries what it learned to the next episode.

Every slot of the batch is an independent trial; there is no Python loop over slots.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from tasks.base import EnvState, TaskBatch, TaskFamily, where


def phi_dim(family: TaskFamily) -> int:
    """Width of phi: observation + previous action (one-hot, or the vector) + reward + done."""
    return family.obs_dim + family.action_width + 2


def action_codes(num_actions: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Rows of one-hot codes indexed by ``action + 1``; row 0 (no previous action) is all zeros."""
    return torch.cat([torch.zeros(1, num_actions), torch.eye(num_actions)]).to(device)


def build_phi(
    obs: torch.Tensor,
    prev_action: torch.Tensor,
    prev_reward: torch.Tensor,
    prev_done: torch.Tensor,
    codes: torch.Tensor,
) -> torch.Tensor:
    """phi(s, a_prev, r_prev, d_prev) as one float vector per slot.

    Args:
        obs: float [n, obs_dim].
        prev_action: long [n]; -1 where there is no previous action (first step of a trial),
            which gives an all-zero one-hot.
        prev_reward: float [n].
        prev_done: bool [n], True when the previous step ended an episode.
        codes: the one-hot table from :func:`action_codes`.
    """
    # One cat, which promotes the done flags to the float dtype.
    one_hot = codes.index_select(0, prev_action + 1)  # cheaper than indexing with a tensor
    return torch.cat([obs, one_hot, prev_reward[:, None], prev_done[:, None]], 1)


def build_continuous_phi(
    obs: torch.Tensor,
    prev_action: torch.Tensor,
    prev_reward: torch.Tensor,
    prev_done: torch.Tensor,
    bounds: tuple[float, float],
) -> torch.Tensor:
    """phi for a continuous family: the previous action vector itself stands in for the one-hot.

    Args:
        obs: float [n, obs_dim].
        prev_action: float [n, action_dim], as sampled by the policy; all zeros at the first step
            of a trial. It is clipped to ``bounds``, so phi shows the action the family applied.
        prev_reward: float [n].
        prev_done: bool [n].
        bounds: the family's ``action_bounds``.
    """
    return torch.cat([obs, prev_action.clamp(*bounds), prev_reward[:, None], prev_done[:, None]], 1)


@dataclass
class StepView:
    """What a policy may see before acting at one step (phi for learners, raw fields for others)."""

    phi: torch.Tensor
    """float [n, phi_dim]."""
    obs: torch.Tensor
    """float [n, obs_dim]."""
    prev_action: torch.Tensor
    """long [n], -1 at the first step of a trial; float [n, action_dim], zeros there, when the
    family's actions are continuous."""
    prev_reward: torch.Tensor
    """float [n]."""
    prev_done: torch.Tensor
    """bool [n]: the previous step ended an episode."""
    reset: torch.Tensor
    """bool [n]: first step of a trial; reset the hidden state here and only here."""
    episode_index: torch.Tensor
    """long [n]: index of the current episode within its trial."""
    active: torch.Tensor
    """bool [n]: False for slots whose trial is over and that are not restarted (evaluation)."""
    tasks: TaskBatch
    """The MDP parameters (for oracles only; learners must not read them)."""
    state: EnvState
    """The environment state (for oracles only)."""
    no_trial_starts: bool = False
    """True when the engine knows, without reading ``reset``, that no slot starts a trial at this
    step (fixed-length trials, between their boundaries): a policy may skip its reset mask."""

    @property
    def reset_if_any(self) -> torch.Tensor | None:
        """``reset``, or None where :attr:`no_trial_starts` (what a recurrent step masks by)."""
        return None if self.no_trial_starts else self.reset


@dataclass
class Transition:
    """The outcome of one engine step."""

    reward: torch.Tensor
    """float [n], zero for inactive slots."""
    episode_done: torch.Tensor
    """bool [n]: this step ended an episode."""
    trial_done: torch.Tensor
    """bool [n]: this step ended the trial (terminal for returns: the MDP changes after it)."""
    episode_index: torch.Tensor
    """long [n]: the episode this step belonged to."""
    active: torch.Tensor
    """bool [n]: the slot was playing a trial at this step."""


def step_record(view: StepView, actions: torch.Tensor, transition: Transition) -> dict:
    """What a rollout stores of one step, [n] or [n, ...] each: phi and the reset mask as the
    policy saw them, the actions, and the step's reward, trial end and episode index."""
    return {
        "phi": view.phi,
        "reset": view.reset,
        "actions": actions,
        "rewards": transition.reward,
        "trial_done": transition.trial_done,
        "episode_index": transition.episode_index,
    }


_ENGINE_FIELDS = (
    "tasks",
    "state",
    "prev_action",
    "prev_reward",
    "prev_done",
    "reset_mask",
    "episode_index",
    "episode_step",
    "active",
    "trial_step",
    "env_steps",
)
"""The engine's mutable fields, saved and restored by its ``state_dict``."""


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {key: item.to(device) for key, item in value.items()}
    return value


class TrialEngine:
    """Steps a batch of independent trials of one family.

    Args:
        family: the task family.
        batch_size: number of parallel trials (slots).
        generator: the task stream; also drives environment noise.
        auto_reset: draw a new MDP when a slot's trial ends (training). When False, a finished
            slot goes inactive and keeps its task, so ``tasks`` still describes every trial played
            (evaluation).
    """

    def __init__(
        self,
        family: TaskFamily,
        batch_size: int,
        generator: torch.Generator,
        auto_reset: bool = True,
    ):
        self.family = family
        self.batch_size = batch_size
        self.generator = generator
        self.auto_reset = auto_reset
        self.device = generator.device
        self.env_steps = 0
        self.view: StepView | None = None
        # Discrete or continuous actions: decided here once, never per step.
        if family.continuous_actions:
            self.codes = None
            self._build_phi = partial(build_continuous_phi, bounds=family.action_bounds)
            self._no_action = torch.zeros(family.action_dim, device=self.device)
            self._clear_actions = self._clear_continuous_actions
        else:
            self.codes = action_codes(family.num_actions, self.device)
            self._build_phi = partial(build_phi, codes=self.codes)
            self._no_action = torch.tensor(-1, device=self.device)
            self._clear_actions = self._clear_discrete_actions

    # Public API -----------------------------------------------------------------------------
    def start(self) -> StepView:
        """Draw a fresh MDP for every slot and return the first view of every trial."""
        n, device = self.batch_size, self.device
        self.tasks = self.family.sample(n, self.generator)
        self.state = self.family.initial_state(self.tasks, self.generator)
        self.prev_action = self._no_action.expand(n, *self._no_action.shape).clone()
        self.prev_reward = torch.zeros(n, device=device)
        self.prev_done = torch.zeros(n, dtype=torch.bool, device=device)
        self.reset_mask = torch.ones(n, dtype=torch.bool, device=device)
        self.episode_index = torch.zeros(n, dtype=torch.long, device=device)
        self.episode_step = torch.zeros(n, dtype=torch.long, device=device)
        self.active = torch.ones(n, dtype=torch.bool, device=device)
        self._no_trial_ends = torch.zeros(n, dtype=torch.bool, device=device)  # read-only
        self._every_slot = torch.ones(n, dtype=torch.bool, device=device)  # read-only
        self.trial_step = 0
        return self._make_view()

    def step(self, action: torch.Tensor) -> tuple[Transition, StepView]:
        """Apply one action per slot; return what happened and the next view.

        Args:
            action: long [n], or float [n, action_dim] for a continuous family.
        """
        family = self.family
        state, reward, terminated = family.step(self.tasks, self.state, action, self.generator)
        episode_done = self._episode_ends(terminated)
        if not self.auto_reset:  # with auto_reset every slot is always active
            reward, episode_done = reward * self.active, episode_done & self.active
        trial_done = self._trial_done(episode_done)
        transition = Transition(reward, episode_done, trial_done, self.episode_index, self.active)
        self.env_steps += self.batch_size

        # Inside a trial: an episode end restarts the episode in the same MDP.
        restart = family.initial_state(self.tasks, self.generator)
        self.state = where(episode_done, restart, state) if state else state
        self.episode_index = self.episode_index + episode_done
        self.prev_action, self.prev_reward, self.prev_done = action, reward, episode_done
        self.reset_mask = trial_done
        self._end_trials(trial_done)
        return transition, self._make_view()

    def state_dict(self) -> dict[str, Any]:
        """Everything that decides the engine's next steps: the slots' tasks and environment
        states, the previous action, reward and done flags, the episode and step counters, and
        the task stream's generator (plain tensors and ints, safe to save with ``torch.save``)."""
        fields = {name: getattr(self, name) for name in _ENGINE_FIELDS}
        return {**fields, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> StepView:
        """Continue from :meth:`state_dict` (of an engine of the same family and batch size);
        return the view of the step it had reached."""
        self.start()  # the read-only helpers, then every field is overwritten
        for name in _ENGINE_FIELDS:
            value = state[name]
            setattr(self, name, _to_device(value, self.device))
        self.generator.set_state(state["generator"])
        return self._make_view()

    def all_done(self) -> bool:
        """True when every slot has finished its trial (only meaningful with auto_reset=False)."""
        if self.family.fixed_trial_steps is not None:
            return self.trial_step >= self.family.fixed_trial_steps
        return not bool(self.active.any())

    # Internals ------------------------------------------------------------------------------
    def _episode_ends(self, terminated: torch.Tensor) -> torch.Tensor:
        """Where this step ends an episode (terminated, or the step limit), counting the steps."""
        limit = self.family.max_episode_steps
        if limit == 1:  # every step is an episode (a bandit's pull): nothing to count
            return self._every_slot
        steps = self.episode_step + 1
        episode_done = terminated | (steps >= limit)
        self.episode_step = steps.masked_fill(episode_done, 0)
        return episode_done

    def _trial_done(self, episode_done: torch.Tensor) -> torch.Tensor:
        fixed = self.family.fixed_trial_steps
        self.trial_step += 1
        if fixed is not None:
            # Every trial has the same length: the boundary is known without a device sync.
            ends_now = self.trial_step % fixed == 0
            return episode_done if ends_now else self._no_trial_ends
        return episode_done & (self.episode_index + 1 >= self.family.episodes_per_trial)

    def _end_trials(self, trial_done: torch.Tensor) -> None:
        fixed = self.family.fixed_trial_steps
        if not self.auto_reset:
            self.active = self.active & ~trial_done
            return
        if fixed is not None and self.trial_step % fixed != 0:
            return
        if fixed is None and not bool(trial_done.any()):
            return
        fresh = self.family.sample(self.batch_size, self.generator)
        self.tasks = where(trial_done, fresh, self.tasks)
        fresh_state = self.family.initial_state(self.tasks, self.generator)
        self.state = where(trial_done, fresh_state, self.state) if self.state else self.state
        # A new trial starts with no previous action, reward or done, and a zeroed hidden state.
        self.prev_action = self._clear_actions(trial_done)
        self.prev_reward = torch.where(trial_done, 0.0, self.prev_reward)
        self.prev_done = self.prev_done & ~trial_done
        self.episode_index = torch.where(trial_done, 0, self.episode_index)

    def _clear_discrete_actions(self, trial_done: torch.Tensor) -> torch.Tensor:
        return torch.where(trial_done, -1, self.prev_action)

    def _clear_continuous_actions(self, trial_done: torch.Tensor) -> torch.Tensor:
        return torch.where(trial_done[:, None], 0.0, self.prev_action)

    def _make_view(self) -> StepView:
        obs = self.family.observe(self.tasks, self.state)
        phi = self._build_phi(obs, self.prev_action, self.prev_reward, self.prev_done)
        self.view = StepView(
            phi=phi,
            obs=obs,
            prev_action=self.prev_action,
            prev_reward=self.prev_reward,
            prev_done=self.prev_done,
            reset=self.reset_mask,
            episode_index=self.episode_index,
            active=self.active,
            tasks=self.tasks,
            state=self.state,
            no_trial_starts=self._between_trial_boundaries(),
        )
        return self.view

    def _between_trial_boundaries(self) -> bool:
        fixed = self.family.fixed_trial_steps
        return fixed is not None and self.trial_step % fixed != 0
