"""``metarl-bench reproduce rl2-table2``: RL² Table 2 (random tabular MDPs), published beside ours.

Five settings (10, 25, 50, 75 and 100 episodes per trial) of ``tabular-mdp`` (10 states, 5 actions,
horizon 10). Every cell is normalised as the reference README says: the mean total reward per trial
divided by the mean expected total of the oracle (finite-horizon value iteration on the known MDP)
over the same trials; its standard error is the delta-method one of that ratio. Classical strategies
with a grid are tuned on ``tune`` trials (highest mean total reward, first value on a tie, every
value on the same trials, as :mod:`benchmark.tuning` does) and evaluated on ``trials`` held-out
``test`` trials. The RL² column is trained only for the settings the budget names; otherwise it
shows the published value marked "not run". BEB has no published value (the transcription omits
it) and is reported for completeness.

Each cell compares ours with the published value in standard errors,
z = (ours - published) / sqrt(SE_ours^2 + SE_published^2 + rounding^2), SE_published being our
per-trial spread over sqrt(1000) and rounding = 0.0005 / sqrt(3) (three decimals). |z| > 3 is
flagged, and every flagged cell gets a footnote with a reason measured by the same command:

- Random: the documented generator's exact random / oracle by dynamic programming on
  ``REFERENCE_MDPS`` MDPs (0.458, not the published 0.482).
- The shared offset: each cell is also rescaled by the Random column (ours divided by the random
  policy's expected total on the same trials, times the row's published Random value; its SE
  includes the published Random value's own); a cell within 3 SE once rescaled says so.
- eps-Greedy: the diagnostic column ``eps-Greedy eps/sqrt(k)`` (exploration eps / sqrt(k) in
  episode k, eps tuned over the same grid) is played too; where only it lands within 3 SE after
  rescaling, the footnote says so.
- Anything else is footnoted as unexplained, with its rescaled z in the "Rescaled" table.

The table goes to ``<out>/rl2_table2.md`` and ``.csv`` and to an MLflow run.
"""

from __future__ import annotations

import csv
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from baselines.strategies import get_strategy
from benchmark.config import CONFIG_DIR, merge_checked, validate_sections
from benchmark.evaluation import play_trials
from benchmark.reproduce import FLAG_Z, PUBLISHED_TRIALS, rl2_available
from benchmark.tracking import SUITE_ROOT, artifact_location, git_tags
from benchmark.tuning import EVAL_SPLIT, TUNE_SPLIT
from tasks import make_task, require, task_generator

TABLE = "rl2-table2"
FAMILY = "tabular-mdp"
PUBLISHED_CSV = SUITE_ROOT / "results" / "published" / "rl2_table2_mdps_normalized.csv"
BUDGET_FILE = CONFIG_DIR / "reproduce" / f"{TABLE}.yaml"
BUDGETS = ("smoke", "quick", "paper")
EPISODES = (10, 25, 50, 75, 100)
COLUMNS: tuple[tuple[str, str | None], ...] = (
    ("Random", "random"),
    ("eps-Greedy", "eps-greedy"),
    ("PSRL", "psrl"),
    ("OPSRL", "opsrl"),
    ("UCRL2", "ucrl2"),
    ("BEB", "beb"),
    ("RL2", None),
)
"""Column -> our strategy (None: the learned RL² column)."""
DIAGNOSTICS: tuple[tuple[str, str, str, tuple[tuple[str, Any], ...]], ...] = (
    ("eps-Greedy eps/sqrt(k)", "eps-greedy", "eps-Greedy", (("decay", 0.5),)),
)
"""Extra columns, not in the paper: (name, strategy, published column compared, fixed params).
eps-Greedy whose exploration decays as eps / sqrt(k) in episode k, tuned over the same eps grid."""
GRIDS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "eps-greedy": ("eps", tuple(round(0.1 * i, 1) for i in range(1, 11))),
    "opsrl": ("samples", tuple(range(1, 21))),
    "ucrl2": ("scale", tuple(float(f"{10 ** (-4 + 0.2 * i):.4g}") for i in range(21))),
    "beb": ("scale", tuple(float(f"{10 ** (-4 + 0.2 * i):.4g}") for i in range(21))),
}
"""Strategy -> (hyperparameter, grid) of the RL² Table 2 protocol (reference README)."""
ROUNDING_SD = 0.0005 / math.sqrt(3.0)
REFERENCE_MDPS = 20_000
"""MDPs of the ``test`` stream over which the Random footnote's exact expectation is computed."""


@dataclass
class Budget:
    """One budget of ``benchmark/configs/reproduce/rl2-table2.yaml``."""

    trials: int = 1000
    """Held-out evaluation trials per cell."""
    tune_trials: int = 200
    """Tuning trials per grid value (eps-greedy, UCRL2, BEB)."""
    opsrl_tune_trials: int = 100
    """Tuning trials per grid value for OPSRL."""
    rl2_episodes: list[int] = field(default_factory=list)
    """Episodes of the settings whose RL² cell is trained."""
    rl2_overrides: list[str] = field(default_factory=list)
    """key=value overrides of the RL² runs."""

    def __post_init__(self):
        for key in ("trials", "tune_trials", "opsrl_tune_trials"):
            require(getattr(self, key) >= 1, f"budget {key} must be >= 1, got {getattr(self, key)}")


@dataclass
class Cell:
    """One (episodes, column) cell: the published normalised value and ours."""

    episodes: int
    column: str
    strategy: str
    published: float | None
    mean: float | None = None
    stderr: float | None = None
    trials: int = 0
    total_reward: float | None = None
    tuned: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    run_id: str = ""
    note: str = ""
    vs_random: float | None = None
    """Mean total divided by the random policy's mean expected total on the same trials."""
    vs_random_se: float | None = None
    """Delta-method standard error of ``vs_random``."""
    random_published: float | None = None
    """The published Random value of this cell's row."""
    random_published_se: float | None = None
    """Uncertainty of that value (its 1000-trial SE estimated from our Random cell, rounding)."""

    def _published_sd(self) -> float:
        """The published value's 1000-trial SE (from our per-trial spread) with rounding."""
        published_se = self.stderr * math.sqrt(self.trials) / math.sqrt(PUBLISHED_TRIALS)
        return math.sqrt(published_se**2 + ROUNDING_SD**2)

    @property
    def z(self) -> float | None:
        """(ours - published) in combined standard errors; None when not run or unpublished."""
        if self.mean is None or self.published is None or self.stderr is None:
            return None
        return (self.mean - self.published) / math.hypot(self.stderr, self._published_sd())

    @property
    def rescaled(self) -> float | None:
        """Ours rescaled by the Random column: ``vs_random`` times the published Random value.

        Equals ours divided by (our Random / published Random) of the row, the random policy's
        expected total standing in for our own Random cell; None without the inputs.
        """
        if self.vs_random is None or self.random_published is None:
            return None
        return self.vs_random * self.random_published

    @property
    def rescaled_se(self) -> float | None:
        """Standard error of :attr:`rescaled` (ours, and the published Random value's)."""
        if self.rescaled is None or self.vs_random_se is None:
            return None
        relative = (self.random_published_se or 0.0) / self.random_published
        return math.hypot(self.vs_random_se * self.random_published, self.rescaled * relative)

    @property
    def rescaled_z(self) -> float | None:
        """(rescaled - published) in combined standard errors; None when either is missing."""
        if self.rescaled_se is None or self.published is None or self.stderr is None:
            return None
        return (self.rescaled - self.published) / math.hypot(self.rescaled_se, self._published_sd())

    @property
    def flagged(self) -> bool:
        """True when ours differs from the published value by more than 3 standard errors."""
        return self.z is not None and abs(self.z) > FLAG_Z


def load_budget(name: str) -> Budget:
    """The budget called ``name`` from the budget YAML, validated.

    Args:
        name: smoke, quick or paper.
    """
    require(name in BUDGETS, f"unknown budget '{name}'; valid budgets: {', '.join(BUDGETS)}")
    data = OmegaConf.to_container(OmegaConf.load(BUDGET_FILE))
    schema = OmegaConf.create({"budget": OmegaConf.structured(Budget)})
    OmegaConf.set_struct(schema, True)
    config = merge_checked(schema, {"budget": data.get(name, {})})
    validate_sections(config)
    return OmegaConf.to_object(config.budget)


def parse_settings(names: list[str] | None) -> list[int]:
    """The settings (episodes per trial) named in ``names``; all five when empty or None.

    Args:
        names: e.g. ``["10", "100"]``.
    """
    if not names:
        return list(EPISODES)
    valid = {str(episodes): episodes for episodes in EPISODES}
    for name in names:
        require(
            name in valid,
            f"unknown setting '{name}' for {TABLE}; valid settings (episodes per trial): "
            f"{', '.join(valid)}",
        )
    return [valid[name] for name in dict.fromkeys(names)]


def published_table(path: Path = PUBLISHED_CSV) -> dict[int, dict[str, float]]:
    """The published normalised scores: episodes -> column -> value.

    Args:
        path: the shipped CSV (``n_episodes`` and one column per strategy).
    """
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {int(row.pop("n_episodes")): {k: float(v) for k, v in row.items()} for row in rows}


# Classical cells ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One evaluation: a grid value on tune trials, or a held-out cell on test trials."""

    column: str
    strategy: str
    episodes: int
    params: tuple[tuple[str, Any], ...]
    trials: int
    seed: int
    split: str

    def cost(self) -> float:
        """Rough relative run time (longest first keeps the worker processes busy)."""
        per_step = {"opsrl": 3.0 * dict(self.params).get("samples", 1), "ucrl2": 8.0}
        return self.episodes * self.trials * per_step.get(self.strategy, 2.0)


def normalised_score(totals: torch.Tensor, oracle: torch.Tensor) -> tuple[float, float]:
    """mean(totals) / mean(oracle) and its delta-method standard error.

    Args:
        totals: total reward per trial [N].
        oracle: the oracle's expected total of the same trials [N].
    """
    ratio = (totals.mean() / oracle.mean()).item()
    if totals.numel() < 2:
        return ratio, float("nan")
    residual = totals - ratio * oracle
    stderr = residual.std().item() / math.sqrt(totals.numel()) / oracle.mean().item()
    return ratio, stderr


def run_job(job: Job) -> tuple[float, float, float, float, float, float]:
    """Play one job.

    Returns:
        (score / oracle, its SE, mean total reward, seconds, score / random policy, its SE), each
        ratio of mean totals over the job's trials against the reference's expected totals.
    """
    torch.set_num_threads(1)
    started = time.perf_counter()
    family = make_task(FAMILY, episodes=job.episodes)
    policy = get_strategy(job.strategy).build(family, dict(job.params))
    totals, _, _, tasks = play_trials(policy, family, job.trials, job.seed, split=job.split)
    references = family.reference_scores(tasks)
    ratio, stderr = normalised_score(totals, references["oracle"])
    vs_random, vs_random_se = normalised_score(totals, references["random"])
    seconds = time.perf_counter() - started
    return ratio, stderr, totals.mean().item(), seconds, vs_random, vs_random_se


def classical_columns() -> list[tuple[str, str, tuple[tuple[str, Any], ...]]]:
    """(column, strategy, fixed params) of every classical column, the diagnostics last."""
    main = [(column, strategy, ()) for column, strategy in COLUMNS if strategy is not None]
    return main + [(name, strategy, fixed) for name, strategy, _, fixed in DIAGNOSTICS]


def _run_sorted(pool: ProcessPoolExecutor | None, jobs: list[Job]) -> dict[Job, tuple]:
    ordered = sorted(jobs, key=Job.cost, reverse=True)
    results = map(run_job, ordered) if pool is None else pool.map(run_job, ordered)
    return dict(zip(ordered, results, strict=True))


def tuning_jobs(settings: list[int], budget: Budget, seed: int) -> list[Job]:
    """Every grid value of every tuned strategy on every setting, on ``tune`` trials."""
    jobs = []
    for episodes in settings:
        for column, strategy, fixed in classical_columns():
            if strategy not in GRIDS:
                continue
            param, grid = GRIDS[strategy]
            trials = budget.opsrl_tune_trials if strategy == "opsrl" else budget.tune_trials
            jobs += [
                Job(column, strategy, episodes, ((param, v), *fixed), trials, seed, TUNE_SPLIT)
                for v in grid
            ]
    return jobs


def choose(tuning: dict[Job, tuple]) -> dict[tuple, dict[str, Any]]:
    """The chosen value per (episodes, column): highest mean total, first in grid on a tie."""
    scores: dict[tuple, dict[Any, float]] = {}
    for job, result in tuning.items():
        scores.setdefault((job.episodes, job.column), {})[job.params[0][1]] = result[2]
    strategies = {column: strategy for column, strategy, _ in classical_columns()}
    chosen = {}
    for key, values in scores.items():
        param, grid = GRIDS[strategies[key[1]]]
        chosen[key] = {param: max(grid, key=lambda v: (values[v], -grid.index(v)))}
    return chosen


def run_classical(
    settings: list[int], budget: Budget, trials: int, seed: int, workers: int
) -> list[Cell]:
    """Tune and evaluate every classical cell of ``settings`` over ``workers`` processes.

    Args:
        settings: episodes per trial of the rows to run.
        budget: tuning trials.
        trials: held-out evaluation trials per cell.
        seed: seed of the task streams.
        workers: processes (1 runs in this process).
    """
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context) if workers > 1 else None
    try:
        tuning = _run_sorted(pool, tuning_jobs(settings, budget, seed))
        chosen = choose(tuning)
        evaluations = [
            Job(c, s, e, (*chosen.get((e, c), {}).items(), *fixed), trials, seed, EVAL_SPLIT)
            for e in settings
            for c, s, fixed in classical_columns()
        ]
        results = _run_sorted(pool, evaluations)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    cells = []
    for job, (ratio, stderr, total, seconds, vs_random, vs_random_se) in results.items():
        key = (job.episodes, job.column)
        tune_seconds = sum(r[3] for j, r in tuning.items() if (j.episodes, j.column) == key)
        cells.append(
            Cell(
                job.episodes, job.column, job.strategy, None, ratio, stderr, job.trials, total,
                chosen.get(key, {}), seconds + tune_seconds, vs_random=vs_random,
                vs_random_se=vs_random_se,
            )
        )  # fmt: skip
    return cells


# The RL² column -------------------------------------------------------------------------------


def rl2_cells(
    settings: list[int], budget: Budget, trials: int, seed: int, tracking_uri: str, experiment: str
) -> list[Cell]:
    """Train and evaluate ``rl2`` on the settings whose episodes the budget names.

    Args:
        settings: the rows of the table.
        budget: which settings to train and the training overrides.
        trials: held-out evaluation trials.
        seed: the runs' seed (their evaluation plays the ``test`` stream of this seed).
        tracking_uri: MLflow store of the training runs.
        experiment: MLflow experiment of the training runs.
    """
    from benchmark.config import load_run_config
    from benchmark.runner import train_and_evaluate

    cells = []
    for episodes in (e for e in settings if e in budget.rl2_episodes):
        overrides = [f"task.episodes={episodes}", f"seed={seed}", f"eval.trials={trials}"]
        spec = load_run_config("rl2", FAMILY, [*overrides, *budget.rl2_overrides])
        started = time.perf_counter()
        summary = train_and_evaluate(spec, tracking_uri, experiment, progress=False)
        family = make_task(FAMILY, episodes=episodes)
        tasks = family.sample(trials, task_generator(seed, EVAL_SPLIT))
        oracle = family.reference_scores(tasks)["oracle"].mean().item()
        cells.append(
            Cell(
                episodes, "RL2", "rl2", None, summary["mean_total_reward"] / oracle,
                summary["stderr"] / oracle, int(summary["trials"]), summary["mean_total_reward"],
                seconds=time.perf_counter() - started, run_id=summary["run_id"],
                note=f"trained for {summary['env_steps']} env steps",
            )
        )  # fmt: skip
    return cells


def complete_table(
    settings: list[int], cells: list[Cell], published: dict[int, dict[str, float]]
) -> list[Cell]:
    """All cells of ``settings`` in table order with published values; missing ones "not run".

    Every cell also gets its row's published Random value and that value's uncertainty (for
    :attr:`Cell.rescaled`).
    """
    by_key = {(cell.episodes, cell.column): cell for cell in cells}
    table = []
    for episodes in settings:
        row = []
        for column, strategy in COLUMNS:
            cell = by_key.get((episodes, column)) or Cell(
                episodes, column, strategy or "rl2", None, note="not run"
            )
            cell.published = published[episodes].get(column)
            row.append(cell)
        _attach_random(row, by_key.get((episodes, "Random")), published[episodes]["Random"])
        table += row
    return table


def complete_diagnostics(
    settings: list[int], cells: list[Cell], published: dict[int, dict[str, float]]
) -> list[Cell]:
    """The diagnostic cells of ``settings``, each compared with its published column."""
    by_key = {(cell.episodes, cell.column): cell for cell in cells}
    table = []
    for episodes in settings:
        for name, _, compared, _ in DIAGNOSTICS:
            cell = by_key.get((episodes, name))
            if cell is None:
                continue
            cell.published = published[episodes].get(compared)
            _attach_random([cell], by_key.get((episodes, "Random")), published[episodes]["Random"])
            table.append(cell)
    return table


def _attach_random(row: list[Cell], random: Cell | None, value: float) -> None:
    spread = None
    if random is not None and random.stderr is not None:
        spread = math.hypot(
            random.stderr * math.sqrt(random.trials / PUBLISHED_TRIALS), ROUNDING_SD
        )
    for cell in row:
        cell.random_published, cell.random_published_se = value, spread


def documented_random_ratio(seed: int, mdps: int = REFERENCE_MDPS) -> tuple[float, float]:
    """E[random] / E[oracle] of the documented generator, exact per MDP, and its standard error.

    Dynamic programming on ``mdps`` MDPs of the ``test`` stream of ``seed`` (the expectation does
    not depend on the episodes per trial).
    """
    family = make_task(FAMILY)
    references = family.reference_scores(family.sample(mdps, task_generator(seed, EVAL_SPLIT)))
    return normalised_score(references["random"], references["oracle"])


# Reporting ----------------------------------------------------------------------------------------


def random_reason(ratio: float, stderr: float, mdps: int = REFERENCE_MDPS) -> str:
    """Footnote of the Random column: the documented generator's exact random / oracle."""
    return (
        "Random: the generator as documented (Dirichlet(1) transitions, Normal(1, 1) mean rewards, "
        f"start in state 0, horizon 10) gives random / oracle = {ratio:.4f} ± {stderr:.4f} in "
        f"expectation (finite-horizon dynamic programming on {mdps} MDPs of the `test` stream), "
        "not the published 0.482, so the published rows used a different generator or "
        "normaliser."
    )


def row_factors(table: list[Cell]) -> dict[int, float]:
    """Per row (episodes): our Random cell divided by the published Random value."""
    return {
        cell.episodes: cell.mean / cell.published
        for cell in table
        if cell.column == "Random" and cell.mean is not None and cell.published
    }


def offset_reason(table: list[Cell]) -> str:
    """Footnote of the cells a shared normaliser offset explains (factors from the table)."""
    factors = row_factors(table).values()
    return (
        "Shared offset: ours / published in the Random column is "
        f"{min(factors):.3f} to {max(factors):.3f} across the rows. Rescaled by it (ours "
        "divided by the random policy's expected total on the same trials, times the published "
        "Random value) this cell is within 3 standard errors of the published value; see "
        "'Rescaled by the Random column'."
    )


def decay_reason(diagnostic: str, rows: list[int]) -> str:
    """Footnote of eps-Greedy cells that only the decaying-eps diagnostic brings within 3 SE."""
    episodes = ", ".join(str(e) for e in rows)
    return (
        "eps-Greedy: still more than 3 standard errors below after rescaling by the Random "
        f"column, while `{diagnostic}` (exploration eps / sqrt(k) in episode k, eps tuned over "
        f"the same grid) is within 3 standard errors after rescaling at {episodes} episodes: "
        "consistent with a published eps-Greedy whose exploration decayed."
    )


def unexplained_reason() -> str:
    """Footnote of the flagged cells that no measured reason explains."""
    return (
        "Unexplained: still more than 3 standard errors from the published value after "
        "rescaling by the Random column (see 'Rescaled by the Random column'); no measured "
        "reason found."
    )


def footnotes(
    table: list[Cell],
    diagnostics: list[Cell] | tuple = (),
    random_ratio: tuple[float, float] | None = None,
) -> tuple[dict[tuple[int, str], int], list[str]]:
    """The footnote number of every flagged cell, and the footnote texts.

    A flagged Random cell gets the generator's measured ratio (``random_ratio``), a cell within
    3 SE once rescaled by the Random column the shared offset, an eps-Greedy cell that only a
    decaying-eps diagnostic matches that diagnostic, and any other the unexplained note.

    Args:
        table: the main cells.
        diagnostics: the :data:`DIAGNOSTICS` cells.
        random_ratio: the documented generator's random / oracle and its SE.
    """
    texts: list[str] = []
    refs: dict[tuple[int, str], int] = {}
    for cell in table:
        if not cell.flagged:
            continue
        reason = _reason(cell, table, diagnostics, random_ratio)
        texts += [] if reason in texts else [reason]
        refs[(cell.episodes, cell.column)] = texts.index(reason) + 1
    return refs, texts


def _reason(
    cell: Cell, table: list[Cell], diagnostics, random_ratio: tuple[float, float] | None
) -> str:
    if cell.column == "Random" and random_ratio is not None:
        return random_reason(*random_ratio)
    if cell.rescaled_z is not None and abs(cell.rescaled_z) <= FLAG_Z:
        return offset_reason(table)
    for name, _, compared, _ in DIAGNOSTICS:
        matched = [
            d.episodes
            for d in diagnostics
            if d.column == name and d.rescaled_z is not None and abs(d.rescaled_z) <= FLAG_Z
        ]
        if compared == cell.column and cell.episodes in matched:
            return decay_reason(name, matched)
    return unexplained_reason()


def format_cell(cell: Cell, ref: int | None) -> str:
    """``published · ours ± SE · z`` (⚠ when flagged, [n] for a footnote)."""
    marks = (" ⚠" if cell.flagged else "") + (f" [{ref}]" if ref else "")
    published = "—" if cell.published is None else f"{cell.published:.3f}"
    if cell.mean is None:
        return f"{published} · {cell.note}{marks}"
    z = "" if cell.z is None else f" · {cell.z:+.1f}"
    return f"{published} · {cell.mean:.3f} ± {cell.stderr:.3f}{z}{marks}"


def format_rescaled(cell: Cell) -> str:
    """``rescaled ± SE · z`` (⚠ when |z| > 3), or "—" when the cell has no rescaled value."""
    if cell.rescaled_z is None:
        return "—"
    mark = " ⚠" if abs(cell.rescaled_z) > FLAG_Z else ""
    return f"{cell.rescaled:.3f} ± {cell.rescaled_se:.3f} · {cell.rescaled_z:+.1f}{mark}"


def rescaled_section(table: list[Cell], diagnostics: list[Cell]) -> list[str]:
    """The "Rescaled by the Random column" table: rescaled value, SE and z of every cell."""
    factors = row_factors(table)
    names = [c for c, s in COLUMNS if s not in (None, "random")] + [d[0] for d in DIAGNOSTICS]
    compared = {name: f"{name} (vs. {column})" for name, _, column, _ in DIAGNOSTICS}
    by_key = {(cell.episodes, cell.column): cell for cell in [*table, *diagnostics]}
    lines = [
        "",
        "## Rescaled by the Random column",
        "",
        "Each cell: ours divided by the random policy's expected total on the same trials, times "
        "the row's published Random value · z against the published value (the published Random "
        "value's own uncertainty included). ⚠ marks |z| > 3. Factor: our Random / published "
        "Random.",
        "",
        "| episodes | factor | " + " | ".join(compared.get(n, n) for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for episodes in dict.fromkeys(cell.episodes for cell in table):
        factor = f"{factors[episodes]:.3f}" if episodes in factors else "—"
        cells = [by_key.get((episodes, name)) for name in names]
        text = [format_rescaled(c) if c is not None else "—" for c in cells]
        lines.append(f"| {episodes} | {factor} | " + " | ".join(text) + " |")
    return lines


def format_markdown(
    table: list[Cell],
    meta: dict[str, Any],
    diagnostics: list[Cell] | tuple = (),
    random_ratio: tuple[float, float] | None = None,
) -> str:
    """The Markdown report: the comparison table, the rescaled table, tuned values and notes."""
    refs, texts = footnotes(table, diagnostics, random_ratio)
    columns = [column for column, _ in COLUMNS]
    lines = [
        "# RL² Table 2 (random tabular MDPs, normalised): published vs. metarl-bench",
        "",
        f"Command: `{meta['command']}` (budget {meta['budget']}, seed {meta['seed']}, "
        f"git {meta['git_commit'][:10]}).",
        f"Ours: mean total reward per trial divided by the oracle's mean expected total "
        f"(finite-horizon value iteration on the known MDP) over the same {meta['trials']} "
        "held-out trials per cell (`test` stream), ± delta-method standard error; "
        f"hyperparameters tuned on the separate `tune` stream ({meta['tune_trials']} trials per "
        f"grid value, OPSRL {meta['opsrl_tune_trials']}).",
        f"Classical cells: {meta['classical_seconds']:.1f} s wall time with {meta['workers']} "
        f"worker process(es) on {meta['cpu_count']} CPU cores, tuning included.",
        "",
        "Each cell: published · ours ± SE · z, the difference in standard errors (ours, the "
        "published 1000-trial SE estimated from our per-trial spread, and the published rounding "
        "to 0.001). ⚠ marks |z| > 3. BEB has no published value.",
        "",
        "| episodes | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    rows = [table[i : i + len(columns)] for i in range(0, len(table), len(columns))]
    for row in rows:
        cells = [format_cell(c, refs.get((c.episodes, c.column))) for c in row]
        lines.append(f"| {row[0].episodes} | " + " | ".join(cells) + " |")
    lines += rescaled_section(table, list(diagnostics))
    strategies = {column: strategy for column, strategy, _ in classical_columns()}
    tuned = [column for column, strategy in strategies.items() if strategy in GRIDS]
    header = [f"{c} {GRIDS[strategies[c]][0]}" for c in tuned]
    lines += ["", "## Tuned hyperparameters (chosen on the `tune` stream)", ""]
    lines += ["| episodes | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
    by_key = {(cell.episodes, cell.column): cell for cell in [*table, *diagnostics]}
    for row in rows:
        found = [by_key.get((row[0].episodes, c)) for c in tuned]
        values = [", ".join(str(v) for v in c.tuned.values()) if c else "-" for c in found]
        lines.append(f"| {row[0].episodes} | " + " | ".join(v or "-" for v in values) + " |")
    lines += ["", "## Notes", ""]
    lines += [f"[{n}] {text}" for n, text in enumerate(texts, 1)]
    lines += [f"- {note}" for note in meta.get("notes", [])]
    return "\n".join(lines) + "\n"


CSV_FIELDS = [
    "episodes", "column", "strategy", "published", "mean", "stderr", "trials", "total_reward",
    "z", "flagged", "tuned", "seconds", "run_id", "note", "vs_random", "vs_random_se",
    "random_published", "rescaled", "rescaled_se", "rescaled_z",
]  # fmt: skip


def write_csv(table: list[Cell], path: Path) -> None:
    """One row per cell (tidy format).

    Args:
        table: the cells.
        path: the CSV file to write.
    """
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, CSV_FIELDS)
        writer.writeheader()
        for cell in table:
            row = {key: value for key, value in asdict(cell).items() if key in CSV_FIELDS}
            row["tuned"] = ";".join(f"{k}={v}" for k, v in cell.tuned.items())
            row["z"] = "" if cell.z is None else round(cell.z, 3)
            row["flagged"] = cell.flagged
            for key in ("rescaled", "rescaled_se", "rescaled_z"):
                value = getattr(cell, key)
                row[key] = "" if value is None else round(value, 5)
            writer.writerow(row)


def log_to_mlflow(
    table: list[Cell], meta: dict[str, Any], files: list[Path], tracking_uri: str, experiment: str
) -> str:
    """Record the table as one MLflow run: meta as params, cells as metrics, files as artifacts.

    Returns:
        the run id.
    """
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = (
        found.experiment_id
        if found is not None
        else client.create_experiment(experiment, artifact_location(tracking_uri, experiment))
    )
    tags = {**git_tags(), "table": TABLE, "budget": meta["budget"]}
    run_id = client.create_run(experiment_id, run_name=TABLE, tags=tags).info.run_id
    stamp = int(time.time() * 1000)
    metrics = [Metric("classical_seconds", meta["classical_seconds"], stamp, 0)]
    keys = ("budget", "trials", "seed", "settings", "tune_trials", "opsrl_tune_trials", "workers")
    params = [Param(key, str(meta[key])) for key in keys]
    for cell in table:
        prefix = f"{cell.episodes}/{cell.column}"
        if cell.mean is not None:
            metrics += [Metric(f"{prefix}/mean", cell.mean, stamp, 0)]
            metrics += [Metric(f"{prefix}/stderr", cell.stderr, stamp, 0)]
        if cell.z is not None:
            metrics += [Metric(f"{prefix}/z", cell.z, stamp, 0)]
        if cell.rescaled_z is not None:
            metrics += [Metric(f"{prefix}/rescaled_z", cell.rescaled_z, stamp, 0)]
        params += [Param(f"{prefix}/{key}", str(value)) for key, value in cell.tuned.items()]
    for start in range(0, len(params), 100):
        client.log_batch(run_id, params=params[start : start + 100])
    client.log_batch(run_id, metrics=metrics)
    for path in files:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED")
    return run_id


# Entry point --------------------------------------------------------------------------------------


def reproduce_rl2_table2(
    budget: str = "quick",
    trials: int | None = None,
    settings: list[str] | None = None,
    out: str | Path = "results",
    seed: int = 0,
    workers: int = 2,
    skip_rl2: bool = False,
    tracking_uri: str | None = None,
    experiment: str = "reproduce",
) -> dict[str, Any]:
    """Run the table, write ``<out>/rl2_table2.md`` and ``.csv``, log them to MLflow.

    Args:
        budget: smoke, quick or paper (see ``benchmark/configs/reproduce/rl2-table2.yaml``).
        trials: held-out trials per cell; None uses the budget's.
        settings: episodes per trial, e.g. ``["10", "100"]``; None or empty for all five.
        out: directory of the written table.
        seed: seed of the tuning and evaluation streams (and of the RL² runs).
        workers: processes for the classical cells.
        skip_rl2: do not train the RL² column even when the budget names settings.
        tracking_uri: MLflow store (default: sqlite in the working directory).
        experiment: MLflow experiment.

    Returns:
        the paths written, the MLflow run id, timings and the cells.
    """
    from benchmark.tracking import resolve_tracking_uri

    chosen = load_budget(budget)
    trials = chosen.trials if trials is None else trials
    require(trials >= 1, f"--trials must be >= 1, got {trials}")
    require(workers >= 1, f"--workers must be >= 1, got {workers}")
    rows = parse_settings(settings)
    published = published_table()
    uri = resolve_tracking_uri(tracking_uri)
    started = time.perf_counter()
    cells = run_classical(rows, chosen, trials, seed, workers)
    classical_seconds = time.perf_counter() - started
    run_rl2 = not skip_rl2 and rl2_available() and any(e in chosen.rl2_episodes for e in rows)
    if run_rl2:
        cells += rl2_cells(rows, chosen, trials, seed, uri, experiment)
    table = complete_table(rows, cells, published)
    diagnostics = complete_diagnostics(rows, cells, published)
    random_ratio = documented_random_ratio(seed)
    command = f"metarl-bench reproduce {TABLE} --budget {budget} --trials {trials}"
    command += (" --settings " + " ".join(settings)) if settings else ""
    command += f" --seed {seed} --workers {workers}" + (" --skip-rl2" if skip_rl2 else "")
    meta = {
        "command": command,
        "budget": budget,
        "trials": trials,
        "seed": seed,
        "settings": " ".join(str(e) for e in rows),
        "tune_trials": chosen.tune_trials,
        "opsrl_tune_trials": chosen.opsrl_tune_trials,
        "workers": workers,
        "cpu_count": multiprocessing.cpu_count(),
        "classical_seconds": classical_seconds,
        "git_commit": git_tags()["git_commit"],
        "notes": [_rl2_note(chosen, run_rl2)],
    }
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    markdown, table_csv = folder / "rl2_table2.md", folder / "rl2_table2.csv"
    markdown.write_text(format_markdown(table, meta, diagnostics, random_ratio))
    write_csv([*table, *diagnostics], table_csv)
    run_id = log_to_mlflow(table, meta, [markdown, table_csv], uri, experiment)
    return {
        "markdown": str(markdown),
        "csv": str(table_csv),
        "run_id": run_id,
        "classical_seconds": classical_seconds,
        "total_seconds": time.perf_counter() - started,
        "flagged": sum(cell.flagged for cell in table),
        "footnoted": len(footnotes(table, diagnostics, random_ratio)[0]),
        "cells": [
            asdict(cell) | {"z": cell.z, "rescaled": cell.rescaled, "rescaled_z": cell.rescaled_z}
            for cell in [*table, *diagnostics]
        ],
    }


def _rl2_note(budget: Budget, ran: bool) -> str:
    if ran:
        episodes = ", ".join(str(e) for e in budget.rl2_episodes)
        return (
            f"RL2: the suite's `rl2` trained with this budget for episodes in {episodes} (far "
            "below the paper's training budget); other settings show the published value only."
        )
    return "RL2: not run by this budget; the column shows the published value only."
