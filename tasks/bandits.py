"""Bernoulli bandit families (RL² Table 1; Wang et al. 2016 dependent bandits).

Each pull is one episode of length 1 and a trial is ``pulls`` episodes on one draw of the arm
probabilities, as in RL²: the done flag is 1 after every pull and the hidden state still carries.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tasks.base import EnvState, FamilyConfig, TaskBatch, TaskFamily, check_choices, choice, require
from tasks.registry import register_task

DEPENDENT_DIFFICULTIES: dict[str, tuple[float, ...] | None] = {
    "uniform": None,
    "easy": (0.1, 0.9),
    "medium": (0.25, 0.75),
    "hard": (0.4, 0.6),
}


class BanditFamily(TaskFamily):
    """Shared stepping and references for families whose task is a vector of arm probabilities."""

    @property
    def obs_dim(self) -> int:
        return 1

    @property
    def obs_bounds(self) -> tuple[float, float]:
        return (0.0, 1.0)

    @property
    def max_episode_steps(self) -> int:
        return 1

    @property
    def episodes_per_trial(self) -> int:
        return self.config.pulls

    @property
    def fixed_trial_steps(self) -> int:
        return self.config.pulls

    def initial_state(self, tasks: TaskBatch, generator: torch.Generator) -> EnvState:
        return {}

    def observe(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        # A bandit has no observation; s is a constant zero so phi has the same layout everywhere.
        return tasks["p"].new_zeros(tasks["p"].shape[0], 1)

    def step(self, tasks, state, action, generator):
        chosen_p = tasks["p"].gather(1, action.view(-1, 1)).squeeze(1)
        uniform = torch.rand(chosen_p.shape, generator=generator, device=chosen_p.device)
        reward = (uniform < chosen_p).to(chosen_p.dtype)
        terminated = torch.ones_like(reward, dtype=torch.bool)
        return state, reward, terminated

    def reference_scores(self, tasks: TaskBatch) -> dict[str, torch.Tensor]:
        pulls = self.config.pulls
        return {"random": pulls * tasks["p"].mean(1), "oracle": pulls * tasks["p"].max(1).values}

    def oracle_action(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        return tasks["p"].argmax(1)


@dataclass
class BernoulliBanditConfig(FamilyConfig):
    """Independent Bernoulli arms, p_i ~ U[0, 1] drawn afresh for every trial."""

    arms: int = 5
    """Number of arms k."""
    pulls: int = 100
    """Pulls per trial n (each pull is one episode)."""

    def __post_init__(self):
        require(
            isinstance(self.arms, int) and self.arms >= 2,
            f"task.arms must be >= 2, got {self.arms}",
        )
        require(
            isinstance(self.pulls, int) and self.pulls >= 1,
            f"task.pulls must be >= 1, got {self.pulls}",
        )


@register_task
class BernoulliBandit(BanditFamily):
    """k independent Bernoulli arms; every trial draws each p_i ~ U[0, 1]."""

    name = "bernoulli-bandit"
    gym_id = "metarl/BernoulliBandit-v0"
    Config = BernoulliBanditConfig

    @property
    def num_actions(self) -> int:
        return self.config.arms

    def sample(self, n: int, generator: torch.Generator) -> TaskBatch:
        return {"p": torch.rand(n, self.config.arms, generator=generator, device=generator.device)}


@dataclass
class DependentBanditConfig(FamilyConfig):
    """Two arms with p2 = 1 - p1 (Wang et al. 2016)."""

    difficulty: str = choice("uniform", DEPENDENT_DIFFICULTIES)
    """uniform: p1 ~ U[0,1]; easy: p1 in {0.1, 0.9}; medium: {0.25, 0.75}; hard: {0.4, 0.6}."""
    pulls: int = 100
    """Pulls per trial (each pull is one episode)."""

    def __post_init__(self):
        check_choices(self)
        require(
            isinstance(self.pulls, int) and self.pulls >= 1,
            f"task.pulls must be >= 1, got {self.pulls}",
        )


@register_task
class DependentBandit(BanditFamily):
    """Two dependent arms, p2 = 1 - p1, with p1 drawn by difficulty per trial."""

    name = "dependent-bandit"
    gym_id = "metarl/DependentBandit-v0"
    Config = DependentBanditConfig

    @property
    def num_actions(self) -> int:
        return 2

    def sample(self, n: int, generator: torch.Generator) -> TaskBatch:
        device = generator.device
        support = DEPENDENT_DIFFICULTIES[self.config.difficulty]
        if support is None:
            p1 = torch.rand(n, generator=generator, device=device)
        else:
            values = torch.tensor(support, device=device)
            index = torch.randint(len(support), (n,), generator=generator, device=device)
            p1 = values[index]
        return {"p": torch.stack([p1, 1.0 - p1], dim=1)}
