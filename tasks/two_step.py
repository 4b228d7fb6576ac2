"""The two-step task (Daw et al. 2011) in the simplified form of Wang et al. 2016.

Wang et al. ("Learning to reinforcement learn", experiment on the two-step task) use a three-state
MDP. In the first-stage state S1 the agent chooses between two actions; action ``a`` leads to the
second-stage state S(2 + a) with the common probability ``common_prob`` (0.75 in Wang et al. 2016;
Daw et al. 2011 used 0.7 and Wang et al. 2018 0.8) and to the other second-stage state otherwise
(a rare transition). The second stage has no choice to make: a second-stage state pays reward 1
with its current reward probability, ``high_prob`` (0.9) in one of them and ``low_prob`` (0.1) in
the other, and then the agent is back in S1. After each such two-stage choice the two reward
probabilities swap with probability ``reversal_prob`` (0.025), so the agent has to keep inferring
which second-stage state is the good one. This replaces the slowly drifting reward probabilities
and the second-stage choice of Daw et al.'s original task.

Terms here follow RL²: an *episode* is one two-stage choice (Wang et al.'s "trial"): two steps,
the stage-one choice (reward 0) and the stage-two step (reward 0 or 1, then ``terminated``). A
*trial* is ``episodes`` episodes (default 100, Wang et al.'s "episode") on one draw of the task;
the draw is which second-stage state starts out rewarded, uniform over the two. The recurrent
state carries across episodes and resets at the trial boundary.

The number of actions stays 2 at every step so that phi has one layout; at the second stage both
actions are the same "go" action (the outcome ignores them), which is Wang et al.'s single action.
The observation is the one-hot code of the current state (S1, S2, S3).

The one task parameter that evolves within a trial is ``high`` (which second-stage state is
currently rewarded): the reversals are part of the MDP, and the trial engine restarts the
environment state at every episode end, so ``step`` updates ``tasks["high"]`` in place. It is
listed in :attr:`TwoStep.evolving_task_keys`; every other aspect of the task is fixed by the
config.

Reference scores are exact expectations: ``random`` reaches either second-stage state with
probability 1/2 whatever the transition probabilities, so it earns (high + low) / 2 per episode;
``oracle`` knows the current rewarded state and takes the action whose common transition leads
there, earning common * high + (1 - common) * low per episode.

:func:`stay_probabilities` is the classic analysis of model-based vs model-free behaviour: the
probability of repeating the first-stage choice after common/rare transitions that were
rewarded/unrewarded. Every evaluation reports it (:class:`StayRecorder`, the family's
``behaviour_recorder``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from tasks.base import (
    BehaviourRecorder,
    EnvState,
    FamilyConfig,
    TaskBatch,
    TaskFamily,
    require,
)
from tasks.registry import register_task
from tasks.trial import StepView, Transition

FIRST_STAGE = 0
"""Index of S1; the second-stage states are 1 (S2) and 2 (S3)."""


def stay_counts(
    actions: torch.Tensor, transitions_common: torch.Tensor, rewarded: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeats of the first-stage choice and episode pairs by (common/rare) x (rewarded/unrewarded).

    Every pair of consecutive episodes of a row counts once, under the transition and the reward
    of the earlier episode.

    Args:
        actions: long [n, episodes], the first-stage action of every episode.
        transitions_common: bool [n, episodes], the episode's transition was the common one.
        rewarded: bool [n, episodes], the episode paid a reward.

    Returns:
        (stays, pairs), float [2, 2] each: rows (common, rare), columns (rewarded, unrewarded).
    """
    stay = (actions[:, 1:] == actions[:, :-1]).float().flatten()
    rare = (~transitions_common[:, :-1].bool()).long().flatten()
    unrewarded = (~rewarded[:, :-1].bool()).long().flatten()
    cell = 2 * rare + unrewarded
    pairs = torch.bincount(cell, minlength=4).float()
    stays = torch.bincount(cell, weights=stay, minlength=4).float()
    return stays.view(2, 2), pairs.view(2, 2)


def stay_probabilities(
    actions: torch.Tensor, transitions_common: torch.Tensor, rewarded: torch.Tensor
) -> torch.Tensor:
    """P(repeat the first-stage choice) by (common/rare transition) x (rewarded/unrewarded).

    A model-free "repeat if rewarded" learner shows a main effect of reward; a model-based
    learner shows the reward x transition interaction (it switches after a rewarded rare
    transition). Arguments as :func:`stay_counts`.

    Returns:
        float [2, 2]: rows (common, rare), columns (rewarded, unrewarded); NaN where no episode
        falls in a cell.
    """
    stays, pairs = stay_counts(actions, transitions_common, rewarded)
    return stays / pairs


def common_transitions(actions: torch.Tensor, second_states: torch.Tensor) -> torch.Tensor:
    """Whether each first-stage action led to its common second-stage state.

    Args:
        actions: long, first-stage actions (0 or 1).
        second_states: long, same shape, the second-stage state reached (1 for S2, 2 for S3).
    """
    return second_states == actions + 1


STAY_CELLS = ("common_rewarded", "common_unrewarded", "rare_rewarded", "rare_unrewarded")
"""The cells of the stay table in row-major order of :func:`stay_probabilities`' [2, 2]."""


class StayRecorder(BehaviourRecorder):
    """The stay table of an evaluation (two-step's behaviour record).

    Its summary has ``stay_<cell>`` (the probability of repeating the first-stage choice after an
    episode of that cell; NaN where none) and ``pairs_<cell>`` (the episode pairs counted) for
    each cell of :data:`STAY_CELLS`. Every slot plays its trial in step (two-step's episodes are
    two steps and its trials have a fixed length), so each slot has the same number of
    first-stage steps; nothing is read back from the device until :meth:`summary`.
    """

    def __init__(self):
        self.stages: list[torch.Tensor] = []
        self.actions: list[torch.Tensor] = []
        self.rewards: list[torch.Tensor] = []

    def observe(self, view: StepView, action: torch.Tensor, transition: Transition) -> None:
        """Keep the stage acted in, the action and the reward of one step."""
        self.stages.append(view.obs.argmax(1))
        self.actions.append(action)
        self.rewards.append(transition.reward)

    def summary(self) -> dict[str, float]:
        """``stay_<cell>`` and ``pairs_<cell>`` over every episode pair observed."""
        stage = torch.stack(self.stages, 1)
        n, first = stage.shape[0], stage == FIRST_STAGE
        actions = torch.stack(self.actions, 1)[first].view(n, -1)
        reached = stage[~first].view(n, -1)
        rewarded = torch.stack(self.rewards, 1)[~first].view(n, -1) > 0
        stays, pairs = stay_counts(actions, common_transitions(actions, reached), rewarded)
        stay = (stays.double() / pairs.double()).flatten().tolist()
        counts = pairs.flatten().long().tolist()
        return {
            **{f"stay_{cell}": value for cell, value in zip(STAY_CELLS, stay, strict=True)},
            **{f"pairs_{cell}": value for cell, value in zip(STAY_CELLS, counts, strict=True)},
        }


@dataclass
class TwoStepConfig(FamilyConfig):
    """Wang et al. (2016)'s two-step task; the rewarded second-stage state is drawn per trial."""

    common_prob: float = 0.75
    """Probability that a first-stage action leads to its common second-stage state."""
    high_prob: float = 0.9
    """Reward probability of the currently rewarded second-stage state."""
    low_prob: float = 0.1
    """Reward probability of the other second-stage state."""
    reversal_prob: float = 0.025
    """Probability that the two reward probabilities swap after each episode."""
    episodes: int = 100
    """Episodes (two-stage choices) per trial."""

    def __post_init__(self):
        require(
            isinstance(self.episodes, int)
            and not isinstance(self.episodes, bool)
            and self.episodes >= 1,
            f"task.episodes must be an integer >= 1, got {self.episodes}",
        )
        require(
            _is_number(self.common_prob) and 0.5 < self.common_prob <= 1.0,
            f"task.common_prob must be in (0.5, 1], got {self.common_prob}",
        )
        for key in ("high_prob", "low_prob", "reversal_prob"):
            value = getattr(self, key)
            require(
                _is_number(value) and 0.0 <= value <= 1.0,
                f"task.{key} must be in [0, 1], got {value}",
            )
        require(
            self.high_prob >= self.low_prob,
            f"task.high_prob must be >= task.low_prob ({self.low_prob}), got {self.high_prob}",
        )


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@register_task
class TwoStep(TaskFamily):
    """The two-step task with reward reversals (Wang et al. 2016); see the module docstring."""

    name = "two-step"
    gym_id = "metarl/TwoStep-v0"
    Config = TwoStepConfig
    evolving_task_keys: ClassVar[tuple[str, ...]] = ("high",)
    """Task entries that ``step`` updates within a trial (the reversal process)."""

    @property
    def obs_dim(self) -> int:
        return 3

    @property
    def obs_bounds(self) -> tuple[float, float]:
        return (0.0, 1.0)

    @property
    def num_actions(self) -> int:
        return 2

    @property
    def max_episode_steps(self) -> int:
        return 2

    @property
    def episodes_per_trial(self) -> int:
        return self.config.episodes

    @property
    def fixed_trial_steps(self) -> int:
        return 2 * self.config.episodes

    def sample(self, n: int, generator: torch.Generator) -> TaskBatch:
        # high = 0: S2 is rewarded (reached commonly by action 0); high = 1: S3 (action 1).
        high = torch.randint(2, (n,), generator=generator, device=generator.device)
        return {"high": high}

    def initial_state(self, tasks: TaskBatch, generator: torch.Generator) -> EnvState:
        return {"stage": torch.full_like(tasks["high"], FIRST_STAGE)}

    def observe(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        return torch.eye(3, device=state["stage"].device)[state["stage"]]

    def step(self, tasks, state, action, generator):
        config, stage, high = self.config, state["stage"], tasks["high"]
        uniform = torch.rand(3, stage.shape[0], generator=generator, device=stage.device)
        at_first = stage == FIRST_STAGE
        # Stage one: the common transition takes action a to S(2 + a), i.e. state index a + 1.
        common = uniform[0] < config.common_prob
        reached = 1 + torch.where(common, action, 1 - action)
        # Stage two: pay with the state's current probability, then maybe reverse.
        rewarded_state = stage == high + 1
        p = torch.where(rewarded_state, config.high_prob, config.low_prob)
        reward = torch.where(at_first, 0.0, (uniform[1] < p).float())
        reverse = ~at_first & (uniform[2] < config.reversal_prob)
        tasks["high"].copy_(torch.where(reverse, 1 - high, high))
        next_stage = torch.where(at_first, reached, FIRST_STAGE)
        return {"stage": next_stage}, reward, ~at_first

    def reference_scores(self, tasks: TaskBatch) -> dict[str, torch.Tensor]:
        config = self.config
        random = config.episodes * (config.high_prob + config.low_prob) / 2
        oracle = config.episodes * (
            config.common_prob * config.high_prob + (1 - config.common_prob) * config.low_prob
        )
        ones = torch.ones(tasks["high"].shape[0], device=tasks["high"].device)
        return {"random": random * ones, "oracle": oracle * ones}

    def behaviour_recorder(self) -> StayRecorder:
        """The stay table (:class:`StayRecorder`)."""
        return StayRecorder()

    def oracle_action(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        # The action whose common transition reaches the rewarded state (ignored at stage two).
        return tasks["high"].clone()
