"""Structured run configs: dataclasses with a docstring per field, turned into OmegaConf schemas.

A run's config is layered, each layer validated against the schema (unknown keys are errors):

1. the dataclass defaults of the algorithm, the family, the trainer and the evaluation;
2. ``configs/algos/<algo>.yaml`` and ``configs/tasks/<task>.yaml`` where such a file exists (the
   suite ships none: its per-algorithm settings live in the pair files);
3. ``configs/pairs/<algo>/<task>.yaml``: ``base`` plus ``when`` entries whose ``match`` (task
   parameters, after the user's overrides) selects settings such as the budget for 10 pulls;
   ``extends: <family>`` first applies that family's pair file of the same algorithm (settings
   shared by several families live in one file);
4. the user's ``key=value`` overrides (``task.arms=5``, ``algo.lr=0.001``, ``seed=3``).

``eval.task.<key>=value`` overrides a task field for a second, held-out evaluation only (e.g.
``eval.task.ranges=packer-extreme``, ``eval.task.size=9``): the run is then evaluated on its
training distribution and on ``task.*`` with ``eval.task.*`` on top (:func:`heldout_task`).

A seed (the run's ``seed``, ``eval.seed``, a sweep's seeds, ``evaluate --seed``) is an integer in
[0, 2**32 - 1], the range NumPy's and Lightning's seeding accept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from baselines import get_algorithm_class
from tasks import ConfigError, get_task_class, make_task, phi_dim, require

CONFIG_DIR = Path(__file__).parents[1] / "configs"
RUN_SECTIONS = ("algo", "task", "trainer", "eval")
"""The sections of a run's config besides its top-level ``seed``."""
SEED_MAX = 2**32 - 1
"""The largest valid seed."""
SEED_RANGE = f"an integer in [0, {SEED_MAX}]"


def check_seed(value: Any, name: str = "seed") -> int:
    """Return ``value`` if it is a valid seed, else raise a one-line ConfigError naming ``name``.

    Args:
        value: the candidate (an int; a bool, float or string is not a seed).
        name: how the user wrote the setting, e.g. ``seed``, ``eval.seed`` or ``--seed``.
    """
    require(
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= SEED_MAX,
        f"{name} must be {SEED_RANGE}, got {value!r}",
    )
    return value


@dataclass
class TrainerConfig:
    """How long and where a run trains."""

    env_steps: int = 1_000_000
    """Training budget in environment steps (rounded up to whole rollout batches)."""
    accelerator: str = "cpu"
    """Lightning accelerator: cpu, gpu or auto (environments follow the module's device)."""
    threads: int = 1
    """torch intra-op threads for this run (a sweep fills cores with runs, not threads)."""
    checkpoint_every: int = 2_000_000
    """Env steps between resumable checkpoints (0: none; the final checkpoint is always written)."""

    def __post_init__(self):
        require(self.env_steps >= 1, f"trainer.env_steps must be >= 1, got {self.env_steps}")
        require(
            self.accelerator in ("cpu", "gpu", "cuda", "auto"),
            f"trainer.accelerator must be one of cpu, gpu, cuda, auto, got '{self.accelerator}'",
        )
        require(self.threads >= 1, f"trainer.threads must be >= 1, got {self.threads}")
        require(
            self.checkpoint_every >= 0,
            f"trainer.checkpoint_every must be >= 0, got {self.checkpoint_every}",
        )


@dataclass
class EvalConfig:
    """The held-out evaluation at the end of a run."""

    trials: int = 1000
    """Held-out trials (test task stream)."""
    seed: int | None = None
    """Seed of the test stream; None uses the run's seed (the test stream differs from train)."""
    task: dict[str, Any] = field(default_factory=dict)
    """Task fields overridden for a second, held-out evaluation (``eval.task.ranges=...``); empty:
    none. Its keys and values are checked against the family by :func:`heldout_task_params`."""

    def __post_init__(self):
        require(self.trials >= 1, f"eval.trials must be >= 1, got {self.trials}")
        if self.seed is not None:
            check_seed(self.seed, "eval.seed")


def eval_schema() -> DictConfig:
    """The schema of the ``eval`` section: :class:`EvalConfig`, whose ``task`` mapping takes any
    key (checked against the family by :func:`heldout_task_params`, not by the schema)."""
    schema = OmegaConf.structured(EvalConfig)
    OmegaConf.set_struct(schema.task, False)  # an explicit flag outlives the root's struct mode
    return schema


@dataclass
class RunSpec:
    """A validated run: names plus the resolved config."""

    algo_name: str
    task_name: str
    config: DictConfig = field(repr=False)

    @property
    def seed(self) -> int:
        """The run's seed."""
        return int(self.config.seed)

    def section(self, name: str) -> dict[str, Any]:
        """One section of the config (``algo``, ``task``, ``trainer``, ``eval``) as a plain dict."""
        return OmegaConf.to_container(self.config[name], resolve=True)

    def config_hash(self) -> str:
        """A short hash of the resolved config and names (the run's identity in sweeps).

        An empty ``eval.task`` is left out, so a run without a held-out evaluation hashes as
        before that setting existed.
        """
        config = self.config
        if not config.eval.task:
            config = OmegaConf.to_container(config, resolve=True)
            del config["eval"]["task"]
        text = f"{self.algo_name}|{self.task_name}|{OmegaConf.to_yaml(config, sort_keys=True)}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_run_config(algo_name: str, task_name: str, overrides: list[str]) -> RunSpec:
    """Build and validate the config of one run; any problem raises a one-line ConfigError.

    Args:
        algo_name: a registered algorithm name or ``module:Class``.
        task_name: a registered family name.
        overrides: ``key=value`` strings with dotted keys.
    """
    schema = run_schema(algo_name, task_name)
    user = parse_overrides(overrides)
    layers = [_yaml_layer(CONFIG_DIR / "algos" / f"{algo_name}.yaml")]
    layers.append(_yaml_layer(CONFIG_DIR / "tasks" / f"{task_name}.yaml"))
    pairs = pair_files(algo_name, task_name)
    layers += [pair.get("base", {}) for pair in pairs]
    config = merge_checked(schema, *layers, user)
    task_params = OmegaConf.to_container(config.task)
    for entry in (entry for pair in pairs for entry in pair.get("when", [])):
        if all(task_params.get(k) == v for k, v in entry["match"].items()):
            config = merge_checked(config, entry["set"], user)
    check_seed(config.seed)
    validate_sections(config)
    spec = RunSpec(algo_name, task_name, config)
    heldout_task(spec)
    return spec


def run_schema(algo_name: str, task_name: str) -> DictConfig:
    """The struct-mode schema of a run's config: seed, algo, task, trainer and eval sections.

    Args:
        algo_name: a registered algorithm name or ``module:Class``.
        task_name: a registered family name.
    """
    schema = OmegaConf.create(
        {
            "seed": 0,
            "algo": OmegaConf.structured(get_algorithm_class(algo_name).Config),
            "task": OmegaConf.structured(get_task_class(task_name).Config),
            "trainer": OmegaConf.structured(TrainerConfig),
            "eval": eval_schema(),
        }
    )
    OmegaConf.set_struct(schema, True)
    return schema


def load_resolved_config(algo_name: str, task_name: str, resolved: dict[str, Any]) -> RunSpec:
    """Validate a stored resolved config (a checkpoint's) against the schema into a RunSpec.

    Args:
        algo_name: the algorithm the config belongs to.
        task_name: its family.
        resolved: the config as plain data.
    """
    config = merge_checked(run_schema(algo_name, task_name), resolved)
    validate_sections(config)
    spec = RunSpec(algo_name, task_name, config)
    heldout_task(spec)
    return spec


def heldout_task(spec: RunSpec) -> dict[str, Any] | None:
    """The task parameters of ``spec``'s held-out evaluation, or None without ``eval.task``.

    Raises a one-line ConfigError for an unknown key or a bad value (see
    :func:`heldout_task_params`) and for a held-out family whose input or action sizes differ
    from the trained one's (the policy could not act on it).
    """
    overrides = spec.section("eval")["task"]
    if not overrides:
        return None
    params = heldout_task_params(spec.task_name, spec.section("task"), overrides)
    trained = make_task(spec.task_name, **spec.section("task"))
    heldout = make_task(spec.task_name, **params)
    sizes = [(phi_dim(family), family.action_width) for family in (heldout, trained)]
    require(
        sizes[0] == sizes[1],
        f"eval.task changes the policy's (input, action) sizes to {sizes[0]} from the trained "
        f"{sizes[1]}; override only task fields that keep them",
    )
    return params


def split_heldout(overrides: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Separate ``eval.task.*`` items from other ``key=value`` overrides (``evaluate``'s).

    Returns:
        the other overrides, and the ``eval.task`` fields as a mapping (empty: none).
    """
    heldout = [item for item in overrides if item.startswith("eval.task.")]
    rest = [item for item in overrides if not item.startswith("eval.task.")]
    if not heldout:
        return rest, {}
    return rest, OmegaConf.to_container(parse_overrides(heldout))["eval"]["task"]


def heldout_task_params(
    task_name: str, task_params: dict[str, Any], overrides: dict[str, Any]
) -> dict[str, Any]:
    """``task_params`` with ``overrides`` (``eval.task.*``) on top, validated like ``task.*``.

    Args:
        task_name: a registered family.
        task_params: the training task's resolved parameters.
        overrides: the fields to change for the held-out evaluation.

    Returns:
        the held-out task's parameters; an unknown key, a wrong type or an impossible value
        raises a one-line ConfigError naming ``eval.task.<key>``.
    """
    family_config = OmegaConf.structured(get_task_class(task_name).Config)
    schema = OmegaConf.create({"eval": {"task": family_config}})
    OmegaConf.set_struct(schema, True)
    config = merge_checked(schema, {"eval": {"task": task_params}}, {"eval": {"task": overrides}})
    try:
        validate_sections(config.eval)
    except ConfigError as error:
        raise ConfigError(f"eval.task (task.* with eval.task.* on top): {error}") from None
    return OmegaConf.to_container(config.eval.task)


def parse_overrides(overrides: list[str]) -> DictConfig:
    """Parse ``key=value`` strings into a config (values typed by YAML rules).

    Args:
        overrides: strings such as ``task.arms=5``.
    """
    for item in overrides:
        require("=" in item and not item.startswith("="), f"override '{item}' is not key=value")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except (OmegaConfBaseException, yaml.YAMLError, ValueError) as error:
        raise ConfigError(f"cannot parse overrides: {_one_line(error)}") from None


def merge_checked(base: DictConfig, *layers: Any) -> DictConfig:
    """Merge layers into a struct-mode schema, turning OmegaConf errors into one-line ConfigErrors.

    Args:
        base: the schema (struct mode, so unknown keys fail).
        *layers: dicts or configs merged in order.
    """
    try:
        return OmegaConf.merge(base, *layers)
    except ConfigKeyError as error:
        key = error.full_key or str(error.key)
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        section = (OmegaConf.select(base, parent) if parent else None) or base
        valid = ", ".join(str(k) for k in section)
        raise ConfigError(f"unknown key '{key}'; valid keys here: {valid}") from None
    except OmegaConfBaseException as error:
        key = str(error.full_key)
        valid = f" ({key} must be {SEED_RANGE})" if key.rsplit(".", 1)[-1] == "seed" else ""
        raise ConfigError(f"invalid value for '{key}': {_one_line(error)}{valid}") from None


def validate_sections(config: DictConfig) -> None:
    """Instantiate every section's dataclass so its range checks (``__post_init__``) run."""
    for name in (*RUN_SECTIONS, "strategy"):
        if name in config:
            try:
                OmegaConf.to_object(config[name])
            except OmegaConfBaseException as error:
                cause = error.__cause__
                if isinstance(cause, ConfigError):
                    raise cause from None
                raise ConfigError(f"invalid {name} config: {_one_line(error)}") from None


PAIR_KEYS = ("extends", "base", "when")


def pair_files(algo_name: str, task_name: str) -> list[dict[str, Any]]:
    """The pair files of ``algo_name`` on ``task_name``, the one it ``extends`` first ([] if none).

    ``extends: <family>`` names the same algorithm's file (that of the file that says it) of
    another family, ``extends: <algo>/<family>`` another algorithm's (whose keys must exist in
    this one's config). Raises a one-line ConfigError for an unknown top-level key, or an
    ``extends`` that names no pair file
    or comes back to a file already read.
    """
    chain: list[dict[str, Any]] = []
    seen: list[str] = []
    name = f"{algo_name}/{task_name}"
    while True:
        path = CONFIG_DIR / "pairs" / f"{name}.yaml"
        pair = _yaml_layer(path)
        unknown = sorted(set(pair) - set(PAIR_KEYS))
        require(
            not unknown,
            f"{pair_path(name)}: unknown key '{', '.join(unknown)}' "
            f"(valid: {', '.join(PAIR_KEYS)})",
        )
        seen.append(name)
        chain.insert(0, pair)
        if "extends" not in pair:
            return [pair for pair in chain if pair]
        target = str(pair["extends"])
        name = target if "/" in target else f"{name.split('/')[0]}/{target}"
        if name in seen or not (CONFIG_DIR / "pairs" / f"{name}.yaml").is_file():
            reason = "comes back to a file already read" if name in seen else "names no such file"
            raise ConfigError(f"{pair_path(seen[-1])}: extends: {target} {reason}")


def pair_path(name: str) -> str:
    """A pair file's path (``<algo>/<family>``) relative to the package, for messages."""
    return f"configs/pairs/{name}.yaml"


def _yaml_layer(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    return OmegaConf.to_container(OmegaConf.load(path)) or {}


def _one_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]


def load_task_config(
    task_name: str, overrides: list[str], strategy_config: type | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate ``task.*`` (and ``strategy.*``) overrides for ``evaluate``.

    Args:
        task_name: a registered family name.
        overrides: ``key=value`` strings.
        strategy_config: the strategy's hyperparameter dataclass, if it has one.

    Returns:
        the task parameters and the strategy parameters.
    """
    task_cls = get_task_class(task_name)
    sections: dict[str, Any] = {"task": OmegaConf.structured(task_cls.Config)}
    if strategy_config is not None:
        sections["strategy"] = OmegaConf.structured(strategy_config)
    schema = OmegaConf.create(sections)
    OmegaConf.set_struct(schema, True)
    layer = _yaml_layer(CONFIG_DIR / "tasks" / f"{task_name}.yaml").get("task", {})
    config = merge_checked(schema, {"task": layer}, parse_overrides(overrides))
    validate_sections(config)
    strategy = OmegaConf.to_container(config.strategy) if "strategy" in config else {}
    return OmegaConf.to_container(config.task), strategy
