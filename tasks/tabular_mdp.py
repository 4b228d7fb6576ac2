"""Random tabular MDPs (RL² Table 2; Duan et al. 2016, after Osband's TabulaRL).

Every trial draws one MDP with ``states`` states and ``actions`` actions: the transition
distribution of every (s, a) from a flat Dirichlet(1, ..., 1) and the mean reward of every (s, a)
from Normal(1, 1); an observed reward is the mean plus Normal(0, 1) noise. Every episode starts in
state 0 and lasts ``horizon`` steps; a trial is ``episodes`` episodes on the same MDP. The
observation is the one-hot code of the state.

The reference scores are exact expectations computed by finite-horizon dynamic programming on the
known MDP (:func:`finite_horizon_q`), batched over tasks: ``oracle`` is the value-iteration optimal
policy and ``random`` the uniform policy. The optimal Q table of every task is kept in the task
batch (``q``), so ``oracle_action`` is a lookup by (time step in episode, state).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tasks.base import EnvState, FamilyConfig, TaskBatch, TaskFamily, require
from tasks.registry import register_task


def finite_horizon_q(
    transitions: torch.Tensor, rewards: torch.Tensor, horizon: int, uniform: bool = False
) -> torch.Tensor:
    """Q tables of a batch of finite-horizon MDPs by backward induction.

    Q_h(s, a) = R(s, a) + sum_s' P(s' | s, a) V_{h+1}(s') with V_horizon = 0, where
    V_h(s) = max_a Q_h(s, a) (optimal) or mean_a Q_h(s, a) (uniform random policy).

    Args:
        transitions: float [n, S, A, S], rows sum to one.
        rewards: float [n, S, A], mean rewards.
        horizon: steps per episode H.
        uniform: evaluate the uniform random policy instead of the optimal one.

    Returns:
        float [n, H, S, A]; entry h is the Q table with h steps already taken.
    """
    n, states, actions = rewards.shape
    value = rewards.new_zeros(n, states)
    tables = []
    for _ in range(horizon):
        q = rewards + torch.einsum("nsat,nt->nsa", transitions, value)
        tables.append(q)
        value = q.mean(2) if uniform else q.max(2).values
    return torch.stack(tables[::-1], dim=1)


@dataclass
class TabularMDPConfig(FamilyConfig):
    """Random tabular MDPs, one drawn afresh for every trial."""

    states: int = 10
    """Number of states S."""
    actions: int = 5
    """Number of actions A."""
    horizon: int = 10
    """Steps per episode T."""
    episodes: int = 10
    """Episodes per trial n (RL² Table 2 uses 10, 25, 50, 75, 100)."""

    def __post_init__(self):
        for key, low in (("states", 1), ("actions", 2), ("horizon", 1), ("episodes", 1)):
            value = getattr(self, key)
            require(
                isinstance(value, int) and not isinstance(value, bool) and value >= low,
                f"task.{key} must be an integer >= {low}, got {value}",
            )


@register_task
class TabularMDP(TaskFamily):
    """Random tabular MDPs: Dirichlet(1) transitions, Normal(1, 1) mean rewards, unit noise."""

    name = "tabular-mdp"
    gym_id = "metarl/TabularMDP-v0"
    Config = TabularMDPConfig

    @property
    def obs_dim(self) -> int:
        return self.config.states

    @property
    def obs_bounds(self) -> tuple[float, float]:
        return (0.0, 1.0)

    @property
    def num_actions(self) -> int:
        return self.config.actions

    @property
    def max_episode_steps(self) -> int:
        return self.config.horizon

    @property
    def episodes_per_trial(self) -> int:
        return self.config.episodes

    @property
    def fixed_trial_steps(self) -> int:
        return self.config.horizon * self.config.episodes

    def sample(self, n: int, generator: torch.Generator) -> TaskBatch:
        states, actions, device = self.config.states, self.config.actions, generator.device
        # Flat Dirichlet(1, ..., 1) = normalised Exp(1) draws.
        uniform = torch.rand(n, states, actions, states, generator=generator, device=device)
        weights = -torch.log1p(-uniform)
        transitions = weights / weights.sum(3, keepdim=True)
        rewards = 1.0 + torch.randn(n, states, actions, generator=generator, device=device)
        q = finite_horizon_q(transitions, rewards, self.config.horizon)
        return {"transitions": transitions, "rewards": rewards, "q": q}

    def initial_state(self, tasks: TaskBatch, generator: torch.Generator) -> EnvState:
        n, device = tasks["rewards"].shape[0], tasks["rewards"].device
        zeros = torch.zeros(n, dtype=torch.long, device=device)
        return {"s": zeros, "t": zeros.clone()}

    def observe(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        eye = torch.eye(self.config.states, device=tasks["rewards"].device)
        return eye[state["s"]]

    def step(self, tasks, state, action, generator):
        rows = torch.arange(action.shape[0], device=action.device)
        s = state["s"]
        mean = tasks["rewards"][rows, s, action]
        reward = mean + torch.randn(mean.shape, generator=generator, device=mean.device)
        cdf = tasks["transitions"][rows, s, action].cumsum(1)
        uniform = torch.rand(cdf.shape[0], 1, generator=generator, device=cdf.device)
        next_s = (cdf < uniform).sum(1).clamp(max=self.config.states - 1)
        terminated = torch.zeros_like(s, dtype=torch.bool)
        return {"s": next_s, "t": state["t"] + 1}, reward, terminated

    def reference_scores(self, tasks: TaskBatch) -> dict[str, torch.Tensor]:
        episodes, horizon = self.config.episodes, self.config.horizon
        uniform_q = finite_horizon_q(tasks["transitions"], tasks["rewards"], horizon, uniform=True)
        return {
            "random": episodes * uniform_q[:, 0, 0].mean(1),
            "oracle": episodes * tasks["q"][:, 0, 0].max(1).values,
        }

    def oracle_action(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        rows = torch.arange(state["s"].shape[0], device=state["s"].device)
        t = state["t"].clamp(max=self.config.horizon - 1)
        return tasks["q"][rows, t, state["s"]].argmax(1)
