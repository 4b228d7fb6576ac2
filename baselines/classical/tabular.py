"""Classical strategies for random tabular MDPs (RL² Table 2), after Osband's TabulaRL.

Every strategy keeps, per trial slot, a posterior over the unknown MDP as batched tensors and
replans at the start of every episode by finite-horizon value iteration over all slots at once
(a loop over the H steps of the horizon, none over trials). TabulaRL's conventions:

- Transitions: Dirichlet(alpha0 = 1, ..., 1) prior per (s, a); a transition is counted only when
  the episode continues (the step that ends an episode has no observed next state).
- Rewards: Normal prior N(mu0 = 0, 1 / tau0) with tau0 = 1 on each mean reward and known noise
  precision tau = 1; after k rewards with sum r the posterior is N((mu0 tau0 + tau r) / (tau0 + k
  tau), 1 / (tau0 + k tau)).
- eps-Greedy plans on the posterior-mean MDP (the tabular Q estimate) and explores uniformly with
  probability eps / k^decay in episode k = 1, 2, ... of the trial (decay 0, the default: constant).
  PSRL samples one MDP per episode and plans on it. OPSRL samples ``samples`` MDPs
  and acts on the element-wise largest Q table. UCRL2 runs extended value iteration with
  TabulaRL's confidence widths (delta = 0.05) times ``scale``. BEB adds the bonus
  beta / (1 + n(s, a)) with beta = 2 H^2 ``scale`` to the posterior-mean reward.
- Ties between actions go to a random priority order drawn when each trial starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from baselines.classical.bandits import EpsGreedyConfig
from baselines.classical.sampling import sample_gamma
from baselines.strategies import GRID, register_strategy
from tasks import StepView, TaskFamily, require
from tasks.tabular_mdp import finite_horizon_q

TABULAR_FAMILIES = ("tabular-mdp",)
PRIOR_MEAN, PRIOR_PRECISION, NOISE_PRECISION, DIRICHLET_PRIOR = 0.0, 1.0, 1.0, 1.0
UCRL2_DELTA = 0.05


class PosteriorPlanner:
    """Base of the tabular strategies: per-slot posterior statistics and per-episode planning.

    Subclasses implement :meth:`plan`, returning Q tables [n, H, S, A] for the next episode.
    """

    eps = 0.0
    decay = 0.0

    def begin(self, family: TaskFamily, batch_size: int, generator: torch.Generator) -> None:
        """Start ``batch_size`` trials of ``family`` with the prior.

        Args:
            family: a tabular MDP family.
            batch_size: number of trial slots n.
            generator: drives every random choice of the policy.
        """
        config = family.config
        self.states, self.actions, self.horizon = config.states, config.actions, config.horizon
        self.generator, device = generator, generator.device
        n, s, a = batch_size, self.states, self.actions
        self.counts = torch.zeros(n, s, a, s, device=device)
        self.reward_sum = torch.zeros(n, s, a, device=device)
        self.reward_count = torch.zeros(n, s, a, device=device)
        self.q = torch.zeros(n, self.horizon, s, a, device=device)
        self.priority = torch.zeros(n, a, device=device)
        self.prev_state = torch.zeros(n, dtype=torch.long, device=device)
        self.step_in_episode = torch.zeros(n, dtype=torch.long, device=device)
        self.episode = torch.zeros(n, device=device)
        self.rows = torch.arange(n, device=device)

    def act(self, view: StepView) -> torch.Tensor:
        """Update the posterior with the last step, replan at episode starts, act greedily."""
        state = view.obs.argmax(1)
        self._observe(view, state)
        starts = view.reset | view.prev_done
        self.step_in_episode = torch.where(starts, 0, self.step_in_episode + 1)
        self.episode = torch.where(view.reset, 1.0, self.episode + view.prev_done.float())
        if bool(starts.any()):
            fresh = self.plan()
            self.q = torch.where(starts.view(-1, 1, 1, 1), fresh, self.q)
        self.prev_state = state
        action = self.greedy_action(state)
        if self.eps > 0.0:
            n, device = action.shape[0], action.device
            explore = torch.rand(n, generator=self.generator, device=device) < self.exploration()
            uniform = torch.randint(self.actions, (n,), generator=self.generator, device=device)
            action = torch.where(explore, uniform, action)
        return action

    def greedy_action(self, state: torch.Tensor) -> torch.Tensor:
        """The action of highest planned Q in ``state`` [n], ties to the trial's priority order."""
        step = self.step_in_episode.clamp(max=self.horizon - 1)
        values = self.q[self.rows, step, state]
        best = values.max(1, keepdim=True).values
        return torch.where(values == best, self.priority, -1.0).argmax(1)

    def exploration(self) -> torch.Tensor:
        """Per-slot probability of a uniform action this step: eps / k^decay in episode k."""
        return self.eps * self.episode.clamp(min=1.0).pow(-self.decay)

    def _observe(self, view: StepView, state: torch.Tensor) -> None:
        fresh = view.reset
        if bool(fresh.any()):
            for stat in (self.counts, self.reward_sum, self.reward_count):
                stat.masked_fill_(fresh.view(-1, *([1] * (stat.dim() - 1))), 0.0)
            order = torch.rand(self.priority.shape, generator=self.generator, device=state.device)
            self.priority = torch.where(fresh.unsqueeze(1), order, self.priority)
        seen = ((view.prev_action >= 0) & ~fresh).float()
        pair = (self.prev_state * self.actions + view.prev_action.clamp(min=0)).unsqueeze(1)
        self.reward_count.view(-1, self.states * self.actions).scatter_add_(1, pair, seen[:, None])
        reward = (view.prev_reward * seen).unsqueeze(1)
        self.reward_sum.view(-1, self.states * self.actions).scatter_add_(1, pair, reward)
        moved = (seen * (~view.prev_done).float()).unsqueeze(1)
        flat = self.counts.view(-1, self.states * self.actions * self.states)
        flat.scatter_add_(1, pair * self.states + state.unsqueeze(1), moved)

    # Posterior ------------------------------------------------------------------------------
    def posterior_rewards(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and precision of every mean reward, each [n, S, A]."""
        precision = PRIOR_PRECISION + NOISE_PRECISION * self.reward_count
        mean = (PRIOR_MEAN * PRIOR_PRECISION + NOISE_PRECISION * self.reward_sum) / precision
        return mean, precision

    def posterior_mean_mdp(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior-mean transitions [n, S, A, S] and rewards [n, S, A]."""
        alpha = self.counts + DIRICHLET_PRIOR
        return alpha / alpha.sum(3, keepdim=True), self.posterior_rewards()[0]

    def sample_mdp(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One MDP per slot from the posterior: transitions [n, S, A, S] and rewards [n, S, A]."""
        weights = sample_gamma(self.counts + DIRICHLET_PRIOR, self.generator)
        mean, precision = self.posterior_rewards()
        noise = torch.randn(mean.shape, generator=self.generator, device=mean.device)
        return weights / weights.sum(3, keepdim=True), mean + noise * precision.rsqrt()

    def plan(self) -> torch.Tensor:
        """Q tables [n, H, S, A] for the coming episode of every slot."""
        raise NotImplementedError


class EpsGreedyPlanner(PosteriorPlanner):
    """eps-greedy on the Q table of the posterior-mean MDP.

    Args:
        eps: probability of a uniformly random action at each step of the first episode.
        decay: in episode k the probability is eps / k^decay (0: constant eps).
    """

    def __init__(self, eps: float = 0.1, decay: float = 0.0):
        self.eps, self.decay = eps, decay

    def plan(self) -> torch.Tensor:
        return finite_horizon_q(*self.posterior_mean_mdp(), self.horizon)


class PSRLPlanner(PosteriorPlanner):
    """Posterior sampling (Osband et al. 2013): one sampled MDP per episode, planned exactly."""

    def plan(self) -> torch.Tensor:
        return finite_horizon_q(*self.sample_mdp(), self.horizon)


class OPSRLPlanner(PosteriorPlanner):
    """Optimistic PSRL: the element-wise largest Q table of ``samples`` sampled MDPs.

    Args:
        samples: posterior samples per episode.
    """

    def __init__(self, samples: int = 1):
        self.samples = samples

    def plan(self) -> torch.Tensor:
        best = finite_horizon_q(*self.sample_mdp(), self.horizon)
        for _ in range(self.samples - 1):
            best = torch.maximum(best, finite_horizon_q(*self.sample_mdp(), self.horizon))
        return best


class UCRL2Planner(PosteriorPlanner):
    """UCRL2 (Jaksch et al. 2010) as in TabulaRL: extended value iteration on confidence sets.

    Reward width scale * sqrt(4 log(2 S A t / delta) / n) and transition L1 width
    scale * sqrt(4 S log(2 S A t / delta) / n), where t is the episode number and
    n = max(visits, 1).

    Args:
        scale: multiplier of both confidence widths.
    """

    def __init__(self, scale: float = 1.0):
        self.scale = scale

    def plan(self) -> torch.Tensor:
        transitions, rewards = self.posterior_mean_mdp()
        log_term = torch.log(2 * self.states * self.actions * (self.episode + 1) / UCRL2_DELTA)
        log_term = log_term.view(-1, 1, 1)
        visits_r = self.reward_count.clamp(min=1.0)
        visits_p = self.counts.sum(3).clamp(min=1.0)
        reward_slack = self.scale * torch.sqrt(4 * log_term / visits_r)
        prob_slack = self.scale * torch.sqrt(4 * self.states * log_term / visits_p)
        return extended_value_iteration(
            transitions, rewards + reward_slack, prob_slack, self.horizon
        )


def extended_value_iteration(
    transitions: torch.Tensor, rewards: torch.Tensor, prob_slack: torch.Tensor, horizon: int
) -> torch.Tensor:
    """Finite-horizon optimistic Q tables over L1 balls of transitions (TabulaRL's EVI).

    At every step the best next state (highest value) gets ``prob_slack / 2`` extra mass (all of it
    when that exceeds 1) and the excess is taken from the worst next states first.

    Args:
        transitions: float [n, S, A, S], the centre of each ball.
        rewards: float [n, S, A], optimistic rewards.
        prob_slack: float [n, S, A], the L1 radius of each ball.
        horizon: steps per episode H.

    Returns:
        float [n, H, S, A].
    """
    n, states, actions = rewards.shape
    value = rewards.new_zeros(n, states)
    tables = []
    for _ in range(horizon):
        sorted_value, order = value.sort(1)
        index = order.view(n, 1, 1, states).expand(n, states, actions, states)
        probs = transitions.gather(3, index).clone()
        boosted = probs[..., -1] + prob_slack / 2
        probs[..., -1] = boosted.clamp(max=1.0)
        excess = (probs.sum(3, keepdim=True) - 1.0).clamp(min=0.0)
        before = probs.cumsum(3) - probs
        probs = (probs - (excess - before).clamp(min=0.0)).clamp(min=0.0)
        q = rewards + torch.einsum("nsat,nt->nsa", probs, sorted_value)
        tables.append(q)
        value = q.max(2).values
    return torch.stack(tables[::-1], dim=1)


class BEBPlanner(PosteriorPlanner):
    """Bayesian exploration bonus (Kolter and Ng 2009) as in TabulaRL.

    Plans on the posterior-mean MDP with reward bonus beta / (1 + n(s, a)), beta = 2 H^2 scale.

    Args:
        scale: multiplier of the bonus.
    """

    def __init__(self, scale: float = 1.0):
        self.scale = scale

    def plan(self) -> torch.Tensor:
        transitions, rewards = self.posterior_mean_mdp()
        beta = 2.0 * self.horizon**2 * self.scale
        bonus = beta / (1.0 + self.reward_count)
        return finite_horizon_q(transitions, rewards + bonus, self.horizon)


# Registration -------------------------------------------------------------------------------
# The grids are the RL² Table 2 protocol's (Duan et al. 2016, as in the reference README).

SCALE_GRID = tuple(float(f"{10 ** (-4 + 0.2 * i):.4g}") for i in range(21))
"""10^(-4 + 0.2 i), i = 0..20: 1e-4 to 1 in 21 log-spaced values (4 significant digits)."""


@dataclass
class TabularEpsGreedyConfig(EpsGreedyConfig):
    """Hyperparameters of eps-greedy on tabular MDPs."""

    eps: float = field(default=0.1, metadata={GRID: tuple(round(0.1 * i, 1) for i in range(1, 11))})
    """Probability of a uniformly random action in the first episode of a trial."""
    decay: float = 0.0
    """Exploration in episode k is eps / k^decay (0: constant, the RL² protocol's reading)."""

    def __post_init__(self):
        super().__post_init__()
        require(
            math.isfinite(self.decay) and self.decay >= 0.0,
            f"strategy.decay must be >= 0, got {self.decay}",
        )


@dataclass
class OPSRLConfig:
    """Hyperparameters of OPSRL."""

    samples: int = field(default=1, metadata={GRID: tuple(range(1, 21))})
    """Posterior samples per episode."""

    def __post_init__(self):
        require(self.samples >= 1, f"strategy.samples must be >= 1, got {self.samples}")


@dataclass
class BonusConfig:
    """Hyperparameters of UCRL2 and BEB."""

    scale: float = field(default=1.0, metadata={GRID: SCALE_GRID})
    """Multiplier of the confidence widths / bonus."""

    def __post_init__(self):
        require(
            math.isfinite(self.scale) and self.scale >= 0.0,
            f"strategy.scale must be >= 0, got {self.scale}",
        )


@register_strategy("eps-greedy", config=TabularEpsGreedyConfig, families=TABULAR_FAMILIES)
def make_eps_greedy(family: TaskFamily, eps: float = 0.1, decay: float = 0.0) -> EpsGreedyPlanner:
    """eps-greedy on the posterior-mean MDP's Q table, eps / k^decay in episode k."""
    return EpsGreedyPlanner(eps, decay)


@register_strategy("psrl", families=TABULAR_FAMILIES)
def make_psrl(family: TaskFamily) -> PSRLPlanner:
    """Posterior sampling for RL."""
    return PSRLPlanner()


@register_strategy("opsrl", config=OPSRLConfig, families=TABULAR_FAMILIES)
def make_opsrl(family: TaskFamily, samples: int = 1) -> OPSRLPlanner:
    """Optimistic PSRL with ``samples`` posterior samples."""
    return OPSRLPlanner(samples)


@register_strategy("ucrl2", config=BonusConfig, families=TABULAR_FAMILIES)
def make_ucrl2(family: TaskFamily, scale: float = 1.0) -> UCRL2Planner:
    """UCRL2 with confidence widths times ``scale``."""
    return UCRL2Planner(scale)


@register_strategy("beb", config=BonusConfig, families=TABULAR_FAMILIES)
def make_beb(family: TaskFamily, scale: float = 1.0) -> BEBPlanner:
    """BEB with bonus scale ``scale``."""
    return BEBPlanner(scale)
