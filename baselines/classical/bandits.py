"""Classical strategies for the Bernoulli bandit families, as RL² (Duan et al. 2016) ran them.

Every policy keeps, per trial slot, the successes and failures of each arm as ``[n, arms]`` tensors,
updated from ``view.prev_action`` / ``view.prev_reward`` and cleared where ``view.reset``; one call
of ``act`` chooses the arms of all trials with tensor operations (no Python loop over trials). All
randomness comes from the generator handed to ``begin``, so a seed fixes every choice.

Conventions shared by all strategies here:

- The posterior of every arm starts at Beta(1, 1); the mean estimate is (successes + 1) /
  (pulls + 2), as the RL² authors used for Greedy, eps-Greedy and UCB1.
- Ties (for instance between arms never pulled) are broken at random: each trial draws a random
  priority order of the arms when it starts, and a tie goes to the tied arm first in that order.
  (Under the exchangeable arm prior of both families this gives the same distribution of returns
  as any fixed order, such as the authors' lowest-index rule.)
- On ``dependent-bandit`` the strategies treat the two arms as independent Beta(1, 1) arms; they do
  not use p2 = 1 - p1, so they are not the best possible strategies for that family.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from baselines.classical.sampling import sample_beta, sample_beta_gammas
from baselines.strategies import GRID, register_strategy
from tasks import ConfigError, StepView, TaskFamily, require

BANDIT_FAMILIES = ("bernoulli-bandit", "dependent-bandit")


def trial_pulls(family: TaskFamily) -> int:
    """Pulls per trial of a bandit family (each pull is one episode)."""
    return family.episodes_per_trial


class CountingPolicy:
    """Base of the strategies: per-slot success and failure counts and a random tie-break order."""

    def begin(self, family: TaskFamily, batch_size: int, generator: torch.Generator) -> None:
        """Start ``batch_size`` trials of ``family`` with empty counts.

        Args:
            family: a bandit family (its actions are the arms).
            batch_size: number of trial slots n.
            generator: drives every random choice of the policy.
        """
        self.num_arms = family.num_actions
        self.generator = generator
        self.device = generator.device
        shape = (batch_size, self.num_arms)
        self.successes = torch.zeros(shape, device=self.device)
        self.failures = torch.zeros(shape, device=self.device)
        self.priority = torch.zeros(shape, device=self.device)  # drawn where a trial starts

    def update(self, view: StepView) -> None:
        """Add the previous pull to the counts; clear the slots where a new trial starts."""
        fresh = view.reset
        if bool(fresh.any()):
            rows = fresh.unsqueeze(1)
            self.successes.masked_fill_(rows, 0.0)
            self.failures.masked_fill_(rows, 0.0)
            new_order = torch.rand(
                self.priority.shape, generator=self.generator, device=self.device
            )
            self.priority = torch.where(rows, new_order, self.priority)
        pulled = ((view.prev_action >= 0) & ~fresh).to(self.successes.dtype)
        arm = view.prev_action.clamp(min=0).unsqueeze(1)
        success = (view.prev_reward * pulled).unsqueeze(1)
        self.successes.scatter_add_(1, arm, success)
        self.failures.scatter_add_(1, arm, pulled.unsqueeze(1) - success)

    def argmax(self, values: torch.Tensor) -> torch.Tensor:
        """Row-wise argmax of ``values`` [n, arms], ties broken by the trial's priority order."""
        best = values.max(1, keepdim=True).values
        return torch.where(values == best, self.priority, -1.0).argmax(1)

    def mean_estimate(self) -> torch.Tensor:
        """(successes + 1) / (pulls + 2) per arm: the posterior mean under Beta(1, 1)."""
        return (self.successes + 1.0) / (self.successes + self.failures + 2.0)

    def act(self, view: StepView) -> torch.Tensor:
        """Update the counts from ``view`` and return long [n] arms."""
        self.update(view)
        return self.choose()

    def choose(self) -> torch.Tensor:
        """The arms to pull given the current counts."""
        raise NotImplementedError


class EpsGreedyPolicy(CountingPolicy):
    """With probability eps a uniformly random arm, else the arm of highest mean estimate.

    Greedy is eps = 0 and uniform random play is eps = 1.

    Args:
        eps: exploration probability in [0, 1].
    """

    def __init__(self, eps: float = 0.0):
        self.eps = eps

    def choose(self) -> torch.Tensor:
        greedy = self.argmax(self.mean_estimate())
        if self.eps <= 0.0:
            return greedy
        n = greedy.shape[0]
        explore = torch.rand(n, generator=self.generator, device=self.device) < self.eps
        uniform = torch.randint(self.num_arms, (n,), generator=self.generator, device=self.device)
        return torch.where(explore, uniform, greedy)


class UCB1Policy(CountingPolicy):
    """UCB1 with the authors' estimate: index = (s + 1) / (m + 2) + c * sqrt(2 ln t / (m + 2)).

    m is the arm's pull count and t the number of pulls made so far in the trial (the bonus is zero
    at the first pull). As in the RL² authors' code, the bonus divides by the Beta(1, 1)
    pseudo-count m + 2, not by m, so an arm never pulled has a finite index and is not forced to
    be tried first (with 50 arms and 10 pulls that matters).

    Args:
        c: scale of the exploration bonus, >= 0.
    """

    def __init__(self, c: float = 0.2):
        self.c = c

    def indices(self) -> torch.Tensor:
        """The UCB1 index of every arm, float [n, arms]."""
        pseudo_pulls = self.successes + self.failures + 2.0
        t = (pseudo_pulls.sum(1, keepdim=True) - 2.0 * self.num_arms).clamp(min=1.0)
        bonus = torch.sqrt(2.0 * torch.log(t) / pseudo_pulls)
        return (self.successes + 1.0) / pseudo_pulls + self.c * bonus

    def choose(self) -> torch.Tensor:
        return self.argmax(self.indices())


class ThompsonPolicy(CountingPolicy):
    """Thompson sampling: draw every arm's mean from Beta(s + 1, f + 1); pull the largest draw."""

    def choose(self) -> torch.Tensor:
        draws = sample_beta(self.successes + 1.0, self.failures + 1.0, self.generator)
        return draws.argmax(1)


OTS_VARIANTS = ("hpd", "max")


class OptimisticThompsonPolicy(CountingPolicy):
    """Optimistic Thompson sampling (OTS) with ``samples`` posterior draws per step.

    Two variants:

    - ``hpd`` (default; the RL² authors' code): draw ``samples`` joint samples of all arm means from
      the posterior and keep the one of highest joint posterior density, then pull its best arm.
      More samples pull the choice towards the posterior mode (successes / pulls) of pulled arms,
      so it is "optimistic" only in the sense of trusting the data; m = 1 is plain Thompson.
    - ``max`` (the common variant, May et al. 2012 style): per arm the largest of ``samples`` draws,
      which adds optimism as m grows.

    Args:
        samples: posterior draws per step, >= 1.
        variant: ``hpd`` or ``max``.
    """

    def __init__(self, samples: int = 1, variant: str = "hpd"):
        self.samples = samples
        self.variant = variant

    def choose(self) -> torch.Tensor:
        m = self.samples
        alpha = (self.successes + 1.0).expand(m, *self.successes.shape)
        beta = (self.failures + 1.0).expand(m, *self.failures.shape)
        g_alpha, g_beta = sample_beta_gammas(alpha, beta, self.generator)
        total = g_alpha + g_beta
        draws = g_alpha / total
        if self.variant == "max":
            return draws.max(0).values.argmax(1)
        # Joint log density of each draw up to its normaliser (the same for every draw of a slot):
        # sum over arms of (a - 1) log x + (b - 1) log(1 - x), with x = G_a / (G_a + G_b).
        log_total = total.log_()
        log_density = (
            (alpha - 1.0) * (g_alpha.log_() - log_total)
            + (beta - 1.0) * (g_beta.log_() - log_total)
        ).sum(2)
        best = log_density.argmax(0)
        chosen = draws.gather(0, best.view(1, -1, 1).expand(1, *draws.shape[1:])).squeeze(0)
        return chosen.argmax(1)


class GittinsPolicy(CountingPolicy):
    """Pull the arm whose Beta(s + 1, f + 1) posterior has the highest discounted Gittins index.

    The index table (calibration against a safe arm, truncated dynamic programme, bisection) comes
    from :func:`baselines.classical.gittins.gittins_table` and is cached on disk per discount and
    truncation.

    Args:
        table: float [max_pulls + 1, max_pulls + 1], the index for [successes, failures].
    """

    def __init__(self, table: torch.Tensor):
        self.table = table

    def begin(self, family: TaskFamily, batch_size: int, generator: torch.Generator) -> None:
        super().begin(family, batch_size, generator)
        self.table = self.table.to(self.device)

    def choose(self) -> torch.Tensor:
        size = self.table.shape[1]
        flat = self.successes.long() * size + self.failures.long()
        return self.argmax(self.table.view(-1)[flat])


class BayesOptimalPolicy(CountingPolicy):
    """The exact finite-horizon Bayes-optimal policy under independent Beta(1, 1) arm priors.

    On ``dependent-bandit`` it plans under the independent prior, so it is optimal for
    ``bernoulli-bandit`` only.

    Args:
        planner: a :class:`baselines.classical.bayes_optimal.BayesOptimalPlanner` for the family's
            arms and pulls.
    """

    def __init__(self, planner):
        self.planner = planner

    def choose(self) -> torch.Tensor:
        q = self.planner.q_values(self.successes.long(), self.failures.long()).to(self.device)
        best = q >= q.max(1, keepdim=True).values - 1e-12
        return torch.where(best, self.priority, -1.0).argmax(1)


# Registration -----------------------------------------------------------------------------------
# The grids are the RL² Table 1 protocol's (Duan et al. 2016, as in the reference README); a value
# given explicitly (``strategy.c=0.3``) is not tuned.


@dataclass
class EpsGreedyConfig:
    """Hyperparameters of eps-greedy."""

    eps: float = field(default=0.1, metadata={GRID: tuple(round(0.1 * i, 1) for i in range(11))})
    """Probability of a uniformly random pull."""

    def __post_init__(self):
        require(0.0 <= self.eps <= 1.0, f"strategy.eps must be in [0, 1], got {self.eps}")


@dataclass
class UCB1Config:
    """Hyperparameters of UCB1."""

    c: float = field(default=0.2, metadata={GRID: tuple(round(0.1 * i, 1) for i in range(11))})
    """Scale of the exploration bonus."""

    def __post_init__(self):
        require(self.c >= 0.0, f"strategy.c must be >= 0, got {self.c}")


@dataclass
class OTSConfig:
    """Hyperparameters of optimistic Thompson sampling."""

    samples: int = field(default=1, metadata={GRID: tuple(range(1, 21))})
    """Posterior draws per step m."""
    variant: str = "hpd"
    """hpd: keep the joint draw of highest posterior density (RL² authors'); max: per-arm max."""

    def __post_init__(self):
        require(self.samples >= 1, f"strategy.samples must be >= 1, got {self.samples}")
        require(
            self.variant in OTS_VARIANTS,
            f"strategy.variant must be one of {', '.join(OTS_VARIANTS)}, got '{self.variant}'",
        )


@dataclass
class GittinsConfig:
    """Hyperparameters of the Gittins index strategy."""

    discount: float = field(default=0.99, metadata={GRID: (0.9, 0.99, 0.999, 0.9999)})
    """Discount of the index."""
    truncation: int = 0
    """Horizon of the truncated dynamic programme; 0 uses the index module's default."""

    def __post_init__(self):
        require(
            0.0 < self.discount < 1.0, f"strategy.discount must be in (0, 1), got {self.discount}"
        )
        require(self.truncation >= 0, f"strategy.truncation must be >= 0, got {self.truncation}")


@register_strategy("greedy", families=BANDIT_FAMILIES)
def make_greedy(family: TaskFamily) -> EpsGreedyPolicy:
    """Greedy on the mean estimate (eps-greedy with eps = 0)."""
    return EpsGreedyPolicy(0.0)


@register_strategy("eps-greedy", config=EpsGreedyConfig, families=BANDIT_FAMILIES)
def make_eps_greedy(family: TaskFamily, eps: float = 0.1) -> EpsGreedyPolicy:
    """eps-greedy on the mean estimate."""
    return EpsGreedyPolicy(eps)


@register_strategy("ucb1", config=UCB1Config, families=BANDIT_FAMILIES)
def make_ucb1(family: TaskFamily, c: float = 0.2) -> UCB1Policy:
    """UCB1 with bonus scale ``c``."""
    return UCB1Policy(c)


@register_strategy("thompson", families=BANDIT_FAMILIES)
def make_thompson(family: TaskFamily) -> ThompsonPolicy:
    """Thompson sampling with Beta(1, 1) priors."""
    return ThompsonPolicy()


@register_strategy("ots", config=OTSConfig, families=BANDIT_FAMILIES)
def make_ots(
    family: TaskFamily, samples: int = 1, variant: str = "hpd"
) -> OptimisticThompsonPolicy:
    """Optimistic Thompson sampling with ``samples`` draws."""
    return OptimisticThompsonPolicy(samples, variant)


@register_strategy("gittins", config=GittinsConfig, families=BANDIT_FAMILIES)
def make_gittins(family: TaskFamily, discount: float = 0.99, truncation: int = 0) -> GittinsPolicy:
    """The Gittins index strategy; the index table is computed once and cached on disk."""
    from baselines.classical.gittins import gittins_table

    kwargs = {"truncation": truncation} if truncation > 0 else {}
    table = gittins_table(discount, max_pulls=trial_pulls(family), **kwargs)
    return GittinsPolicy(torch.as_tensor(table, dtype=torch.float64))


@register_strategy("bayes-optimal", families=BANDIT_FAMILIES)
def make_bayes_optimal(family: TaskFamily) -> BayesOptimalPolicy:
    """The exact Bayes-optimal policy; refuses problems beyond the tractable size."""
    from baselines.classical.bayes_optimal import BayesOptimalPlanner, check_tractable

    arms, pulls = family.num_actions, trial_pulls(family)
    try:
        check_tractable(arms, pulls)
    except ValueError as error:
        raise ConfigError(f"bayes-optimal: {error}") from None
    return BayesOptimalPolicy(BayesOptimalPlanner(arms, pulls))
