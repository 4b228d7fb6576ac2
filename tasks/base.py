"""The TaskFamily contract: a distribution over MDPs whose members are stepped as batched tensors.

A family samples the parameters of ``n`` MDPs at once (``sample``) and steps all of them with tensor
operations (``step``), so a bandit pull for 1024 tasks is one tensor op, not 1024 calls. Trial
semantics (episodes per trial, phi, hidden-state resets) live in :mod:`tasks.trial`, not here.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

import torch

if TYPE_CHECKING:
    from tasks.trial import StepView, Transition

TaskBatch = dict[str, torch.Tensor]
EnvState = dict[str, torch.Tensor]

SPLITS = ("train", "tune", "test")


class ConfigError(ValueError):
    """An invalid name, key, type or value in a user's request. Reported in one line, exit 2."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds.

    Args:
        condition: the check that must hold.
        message: one line naming the offending value and the valid range or choices.
    """
    if not condition:
        raise ConfigError(message)


def stream_seed(seed: int, split: str) -> int:
    """Derive the seed of one task stream; train, tune and test streams never share a seed.

    Args:
        seed: the user's seed.
        split: one of ``train``, ``tune``, ``test``.
    """
    require(split in SPLITS, f"unknown split '{split}'; valid splits: {', '.join(SPLITS)}")
    digest = hashlib.sha256(f"metarl-bench:{split}:{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def task_generator(seed: int, split: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator for the ``split`` task stream of ``seed`` on ``device``.

    Args:
        seed: the user's seed.
        split: one of ``train``, ``tune``, ``test``.
        device: where the generator (and the tensors it draws) live.
    """
    generator = torch.Generator(device=device)
    generator.manual_seed(stream_seed(seed, split))
    return generator


def where(mask: torch.Tensor, new: dict[str, torch.Tensor], old: dict[str, torch.Tensor]):
    """Per-slot select between two dicts of batched tensors (``new`` where ``mask``).

    Args:
        mask: bool tensor [n].
        new: tensors with leading dimension n.
        old: tensors with the same keys and shapes.
    """
    out = {}
    for key, old_value in old.items():
        shaped = mask.view(-1, *([1] * (old_value.dim() - 1)))
        out[key] = torch.where(shaped, new[key], old_value)
    return out


def choice(default: str, choices: Iterable[str]) -> Any:
    """A categorical config field: its default and its valid values (``metadata["choices"]``).

    Args:
        default: the default value, one of ``choices``.
        choices: every valid value, in the order they are listed to users.
    """
    return field(default=default, metadata={"choices": tuple(choices)})


def check_choices(config: FamilyConfig) -> None:
    """Validate every categorical field of ``config``; raise a one-line ConfigError naming it."""
    for spec in fields(config):
        choices = spec.metadata.get("choices")
        value = getattr(config, spec.name)
        require(
            choices is None or value in choices,
            f"task.{spec.name} must be one of {', '.join(choices or ())}, got '{value}'",
        )


@dataclass
class FamilyConfig:
    """Base of every family's parameter dataclass; subclasses validate in ``__post_init__``.

    A categorical parameter is declared with :func:`choice`, which records its valid values on the
    field, and validated with :func:`check_choices`.
    """

    def as_dict(self) -> dict[str, Any]:
        """The parameters as a plain dict."""
        return asdict(self)

    @classmethod
    def shown(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The parameters that a setting's label names: all of them unless a family leaves out
        ones that other parameters make inert."""
        return dict(params)


class BehaviourRecorder(ABC):
    """Watches every step of an evaluation and summarises how the policy behaved.

    A family whose tasks have a classic behavioural analysis (two-step's stay probabilities)
    returns one from :meth:`TaskFamily.behaviour_recorder`; the evaluation reports its summary.
    """

    @abstractmethod
    def observe(self, view: StepView, action: torch.Tensor, transition: Transition) -> None:
        """Record one step of every slot.

        Args:
            view: what the policy saw before acting.
            action: the actions taken, [n] (or [n, action_dim]).
            transition: the outcome of the step.
        """

    @abstractmethod
    def summary(self) -> dict[str, float]:
        """The statistics of every step observed, as a flat JSON-ready dict of numbers."""


class TaskFamily(ABC):
    """A family of MDPs, stepped as batched tensors.

    Subclasses set ``name``, ``gym_id`` and ``Config`` and implement the abstract methods. Every
    tensor has the batch of tasks as its leading dimension; no method loops over tasks in Python.
    """

    name: ClassVar[str]
    gym_id: ClassVar[str]
    Config: ClassVar[type[FamilyConfig]]
    finite_tasks: ClassVar[bool] = False
    """The family draws from a finite set of tasks, and its ``train`` and ``test`` streams draw
    from disjoint subsets of it (the conformance tests check it through :meth:`task_keys`)."""
    evolving_task_keys: ClassVar[tuple[str, ...]] = ()
    """Task-batch entries that ``step`` may change within a trial (two-step's reversals); every
    other entry changes only at a trial boundary."""
    version: ClassVar[int] = 1
    """The family's semantics version, recorded with every run (tag ``task_version``). Bump it
    when a change alters what a given config means (dynamics, rewards, task distribution, trial
    length); ``compare`` refuses to set runs of different versions side by side."""
    success_steps: ClassVar[int | None] = None
    """The family's success measure, where it has one: an episode succeeds when it ends with at
    least this many consecutive steps whose :meth:`success_signal` is True. None: none."""
    success_within: ClassVar[int | None] = None
    """Where set, a successful episode must also end within this many steps."""
    has_oracle: ClassVar[bool] = True
    """An optimal policy is known (``oracle_action``); without one (MuJoCo) the ``oracle``
    reference score is NaN and normalised scores need another upper reference."""

    def __init__(self, config: FamilyConfig):
        self.config = config

    def task_keys(self, tasks: TaskBatch) -> list[Hashable]:
        """One hashable per task of a batch, equal for equal tasks (the raw bytes of its
        parameters; a family with a more compact identity overrides it)."""
        rows = [tasks[key].detach().cpu().reshape(len(tasks[key]), -1) for key in sorted(tasks)]
        return [tuple(row[i].numpy().tobytes() for row in rows) for i in range(len(rows[0]))]

    # Shape of the family ----------------------------------------------------------------------
    @property
    @abstractmethod
    def obs_dim(self) -> int:
        """Size of the observation vector s (phi adds actions, reward and done to it)."""

    @property
    @abstractmethod
    def num_actions(self) -> int:
        """Number of discrete actions (0 for a family with continuous actions)."""

    @property
    def action_dim(self) -> int:
        """Size of a continuous action vector; 0 (the default) for a discrete family.

        A continuous family's actions are float [n, action_dim]. The policy samples them from an
        unbounded Gaussian; the family clips them to :attr:`action_bounds` when it applies them.
        """
        return 0

    @property
    def continuous_actions(self) -> bool:
        """True when actions are real vectors (``action_dim > 0``), False for discrete actions."""
        return self.action_dim > 0

    @property
    def action_bounds(self) -> tuple[float, float]:
        """Lower and upper bound of every entry of a continuous action (unused when discrete)."""
        return (-1.0, 1.0)

    @property
    def action_width(self) -> int:
        """Entries the action takes in phi and in the policy head: one-hot codes or the vector."""
        return self.action_dim if self.continuous_actions else self.num_actions

    @property
    @abstractmethod
    def max_episode_steps(self) -> int:
        """Steps after which an episode is truncated."""

    @property
    @abstractmethod
    def episodes_per_trial(self) -> int:
        """Episodes played on one sampled MDP before a new one is drawn."""

    @property
    def obs_bounds(self) -> tuple[float, float]:
        """Lower and upper bound of every observation entry (for the gymnasium space)."""
        return (-float("inf"), float("inf"))

    @property
    def fixed_trial_steps(self) -> int | None:
        """Trial length in steps when it is the same for every task (no early termination).

        The trial engine then knows every boundary without reading tensors back from the device.
        """
        return None

    # Sampling and stepping --------------------------------------------------------------------
    @abstractmethod
    def sample(self, n: int, generator: torch.Generator) -> TaskBatch:
        """Draw the parameters of ``n`` MDPs.

        Args:
            n: number of tasks.
            generator: the task stream (see :func:`task_generator`); its device is used.
        """

    @abstractmethod
    def initial_state(self, tasks: TaskBatch, generator: torch.Generator) -> EnvState:
        """The state at the start of an episode, for every task in ``tasks``."""

    @abstractmethod
    def observe(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        """The observation s, float [n, obs_dim]."""

    @abstractmethod
    def step(
        self, tasks: TaskBatch, state: EnvState, action: torch.Tensor, generator: torch.Generator
    ) -> tuple[EnvState, torch.Tensor, torch.Tensor]:
        """Apply ``action``; return (next state, reward [n], terminated bool [n]).

        ``action`` is long [n] for a discrete family, float [n, action_dim] (unclipped) otherwise.
        """

    # References ------------------------------------------------------------------------------
    @abstractmethod
    def reference_scores(self, tasks: TaskBatch) -> dict[str, torch.Tensor]:
        """Expected total reward per trial of the ``random`` and ``oracle`` policies, each [n]."""

    def success_signal(
        self, tasks: TaskBatch, state: EnvState, terminated: torch.Tensor
    ) -> torch.Tensor:
        """Whether one step counts towards success (see :attr:`success_steps`), bool [n].

        Args:
            tasks: the task batch.
            state: the state the step reached (before any episode restart).
            terminated: the step's termination flags, bool [n].
        """
        raise NotImplementedError(f"task '{self.name}' has no success measure")

    @abstractmethod
    def oracle_action(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        """The action of the policy that knows the task, long [n] (float [n, action_dim])."""

    def behaviour_recorder(self) -> BehaviourRecorder | None:
        """A fresh recorder of the behavioural statistics an evaluation reports for this family
        (``behaviour`` in its result); None (the default) where the family has none."""
        return None

    def describe(self) -> str:
        """A short human-readable setting, e.g. ``bernoulli-bandit(arms=5, pulls=10)``."""
        params = ", ".join(f"{k}={v}" for k, v in self.config.as_dict().items())
        return f"{self.name}({params})"
