"""Test support: a tiny pure-torch family with continuous actions, registered only inside tests.

It lives in its own small module (as ``a3c_support`` does) because LSTM-A3C's spawned workers
import the module that defines a family to unpickle it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tasks.base import EnvState, FamilyConfig, TaskBatch, TaskFamily, require

STEP_SIZE = 0.5
"""How far a full action (|a| = 1) moves the point in one step."""
RANDOM_ROLLOUTS = 256
"""Monte-Carlo rollouts per task behind the random reference."""


@dataclass
class ReachConfig(FamilyConfig):
    """A point on a line must reach a target drawn per trial from U[-1, 1]."""

    steps: int = 4
    """Steps per episode."""
    episodes: int = 2
    """Episodes per trial (the point restarts at 0; the target stays)."""

    def __post_init__(self):
        require(self.steps >= 1, f"task.steps must be >= 1, got {self.steps}")
        require(self.episodes >= 1, f"task.episodes must be >= 1, got {self.episodes}")


class Reach1D(TaskFamily):
    """1-D reach: x' = x + 0.5 clip(a, -1, 1), reward -|x' - target|; the target is hidden."""

    name = "reach-1d"
    gym_id = "metarl/Reach1D-v0"
    Config = ReachConfig

    @property
    def obs_dim(self) -> int:
        return 1

    @property
    def num_actions(self) -> int:
        return 0

    @property
    def action_dim(self) -> int:
        return 1

    @property
    def max_episode_steps(self) -> int:
        return self.config.steps

    @property
    def episodes_per_trial(self) -> int:
        return self.config.episodes

    @property
    def fixed_trial_steps(self) -> int:
        return self.config.steps * self.config.episodes

    def sample(self, n: int, generator: torch.Generator) -> TaskBatch:
        uniform = torch.rand(n, generator=generator, device=generator.device)
        return {"target": 2.0 * uniform - 1.0}

    def initial_state(self, tasks: TaskBatch, generator: torch.Generator) -> EnvState:
        return {"x": torch.zeros_like(tasks["target"])}

    def observe(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        return state["x"][:, None]

    def step(self, tasks, state, action, generator):
        x = state["x"] + STEP_SIZE * action[:, 0].clamp(*self.action_bounds)
        reward = -(x - tasks["target"]).abs()
        return {"x": x}, reward, torch.zeros_like(reward, dtype=torch.bool)

    def reference_scores(self, tasks: TaskBatch) -> dict[str, torch.Tensor]:
        target = tasks["target"]
        steps = torch.arange(1, self.config.steps + 1, device=target.device)
        # The oracle moves straight to the target at full speed and stays there.
        distance = (target.abs()[:, None] - STEP_SIZE * steps).clamp(min=0.0)
        oracle = -self.config.episodes * distance.sum(1)
        return {"oracle": oracle, "random": self._random_reference(target)}

    def _random_reference(self, target: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator(device=target.device).manual_seed(0)
        shape = (target.shape[0], RANDOM_ROLLOUTS, self.config.steps)
        uniform = torch.rand(shape, generator=generator, device=target.device)
        x = (STEP_SIZE * (2.0 * uniform - 1.0)).cumsum(-1)
        per_episode = -(x - target[:, None, None]).abs().sum(-1).mean(1)
        return self.config.episodes * per_episode

    def oracle_action(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        return ((tasks["target"] - state["x"]) / STEP_SIZE).clamp(-1.0, 1.0)[:, None]
