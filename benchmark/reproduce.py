"""``metarl-bench reproduce rl2-table1``: RL² Table 1 (Bernoulli bandits), published beside ours.

Nine settings (pulls in 10, 100, 500 x arms in 5, 10, 50). In every setting each classical strategy
is tuned on ``tune`` trials where it has a grid (:mod:`benchmark.tuning`) and evaluated on
``trials`` held-out ``test`` trials; the RL² column is trained and evaluated by the suite's ``rl2``
algorithm for the settings the budget names, once ``rl2`` is registered, and otherwise shows the
published value marked "not run".

Each cell compares ours with the published value in standard errors,
z = (ours - published) / sqrt(SE_ours^2 + SE_published^2 + rounding^2), where SE_published is our
per-trial standard deviation over sqrt(1000) (the paper evaluated 1000 trials and printed no error
bars) and rounding = 0.05 / sqrt(3) (the paper's one decimal). Cells with |z| > 3 are flagged, and
every flagged cell gets a footnote. For a tuned column (the published value is the best of its grid
on the trials that report it) the same command scores every grid value on the cell's own held-out
trials and the footnote gives the best of them with its z; any other flagged cell is footnoted as
not accounted for by a measurement. The table goes to ``<out>/rl2_table1.md`` and ``.csv`` and to
an MLflow run with the numbers as metrics and both files as artifacts.

Published numbers are read from ``results/published/`` inside the suite.
"""

from __future__ import annotations

import csv
import math
import multiprocessing
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from baselines.strategies import get_strategy
from benchmark.config import CONFIG_DIR, merge_checked, validate_sections
from benchmark.evaluation import evaluate_policy
from benchmark.tracking import SUITE_ROOT, artifact_location, git_tags
from benchmark.tuning import TUNING_GRIDS, choose
from tasks import make_task, require

TABLE = "rl2-table1"
PUBLISHED_CSV = SUITE_ROOT / "results" / "published" / "rl2_table1_bandits.csv"
BUDGET_FILE = CONFIG_DIR / "reproduce" / f"{TABLE}.yaml"
BUDGETS = ("smoke", "quick", "paper")
COLUMNS: tuple[tuple[str, str | None], ...] = (
    ("Random", "random"),
    ("Gittins", "gittins"),
    ("TS", "thompson"),
    ("OTS", "ots"),
    ("UCB1", "ucb1"),
    ("eps-Greedy", "eps-greedy"),
    ("Greedy", "greedy"),
    ("RL2", None),
)
"""Published column -> our strategy (None: the learned RL² column)."""
RL2_ALGORITHM = "rl2"
PUBLISHED_TRIALS = 1000
ROUNDING_SD = 0.05 / math.sqrt(3.0)
FLAG_Z = 3.0
PROTOCOL_NOTES = (
    "Greedy, eps-Greedy and UCB1 estimate each arm's mean as (successes + 1) / (pulls + 2); "
    "UCB1's bonus is c * sqrt(2 ln t / (pulls + 2)), as in the RL² authors' code; ties go to a "
    "random arm.",
    "OTS keeps, of m joint posterior draws, the one of highest posterior density (the authors' "
    "variant); Gittins uses discounted index tables (calibration against a safe arm, truncated "
    "dynamic programme, bisection).",
    "The published tuned columns (Gittins, OTS, UCB1, eps-Greedy) are the best of their grid "
    "scored on the same 1000 trials that report them; ours are tuned on the separate `tune` "
    "stream. Where such a cell is flagged, its footnote gives the best of our grid scored on our "
    "own held-out trials, measured by the same command.",
)
UNEXPLAINED = "Not accounted for by any measurement of this command."
"""The footnote of a flagged cell that no measurement of the invocation speaks to."""


@dataclass(frozen=True)
class Setting:
    """One row of the table."""

    pulls: int
    arms: int

    @property
    def name(self) -> str:
        """``PULLSxARMS``, e.g. ``100x10``."""
        return f"{self.pulls}x{self.arms}"


SETTINGS = tuple(Setting(pulls, arms) for pulls in (10, 100, 500) for arms in (5, 10, 50))


@dataclass
class Budget:
    """One budget of ``benchmark/configs/reproduce/rl2-table1.yaml``."""

    trials: int = 1000
    """Held-out evaluation trials per cell."""
    tune_trials: int = 1000
    """Tuning trials per grid value."""
    ots_tune_trials: int = 1000
    """Tuning trials per grid value for OTS."""
    rl2_pulls: list[int] = field(default_factory=list)
    """Pulls of the settings whose RL² cell is trained."""
    rl2_overrides: list[str] = field(default_factory=list)
    """key=value overrides of the RL² runs."""
    gittins_truncation: int = 0
    """Look-ahead of the Gittins index tables; 0 uses the index module's default."""

    def __post_init__(self):
        for key in ("trials", "tune_trials", "ots_tune_trials"):
            require(getattr(self, key) >= 1, f"budget {key} must be >= 1, got {getattr(self, key)}")


@dataclass
class Cell:
    """One (setting, column) cell: the published value and ours."""

    setting: str
    pulls: int
    arms: int
    column: str
    strategy: str
    published: float
    mean: float | None = None
    stderr: float | None = None
    trials: int = 0
    tuned: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    run_id: str = ""
    note: str = ""

    @property
    def z(self) -> float | None:
        """(ours - published) in combined standard errors; None when not run."""
        if self.mean is None or self.stderr is None or not math.isfinite(self.stderr):
            return None
        std = self.stderr * math.sqrt(self.trials)
        published_se = std / math.sqrt(PUBLISHED_TRIALS)
        scale = math.sqrt(self.stderr**2 + published_se**2 + ROUNDING_SD**2)
        return (self.mean - self.published) / scale

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


def parse_settings(names: list[str] | None) -> list[Setting]:
    """The settings named ``PULLSxARMS`` (all nine when ``names`` is empty or None).

    Args:
        names: e.g. ``["10x5", "100x50"]``.
    """
    if not names:
        return list(SETTINGS)
    by_name = {setting.name: setting for setting in SETTINGS}
    for name in names:
        require(
            name in by_name,
            f"unknown setting '{name}' for {TABLE}; valid settings (PULLSxARMS): "
            f"{', '.join(by_name)}",
        )
    return [by_name[name] for name in dict.fromkeys(names)]


def published_table(path: Path = PUBLISHED_CSV) -> dict[str, dict[str, float]]:
    """The published numbers: setting name -> column -> mean total reward.

    Args:
        path: the shipped CSV (``n_pulls, k_arms`` and one column per strategy).
    """
    table: dict[str, dict[str, float]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            name = Setting(int(row.pop("n_pulls")), int(row.pop("k_arms"))).name
            table[name] = {column: float(value) for column, value in row.items()}
    return table


# Classical cells ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One evaluation of a classical strategy: a grid value on tune trials, or a held-out cell."""

    column: str
    strategy: str
    setting: Setting
    params: tuple[tuple[str, Any], ...]
    trials: int
    seed: int
    split: str

    def cost(self) -> float:
        """Rough relative run time (longest first keeps the worker processes busy)."""
        params = dict(self.params)
        draws = {"thompson": 3.0, "ots": 3.0 * params.get("samples", 1)}.get(self.strategy, 0.3)
        return self.setting.pulls * (self.setting.arms * self.trials * draws + 3000.0)


def run_job(job: Job) -> tuple[float, float, float]:
    """Play one job; return (mean total reward, standard error, seconds)."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    family = make_task("bernoulli-bandit", arms=job.setting.arms, pulls=job.setting.pulls)
    policy = get_strategy(job.strategy).build(family, dict(job.params))
    result = evaluate_policy(policy, family, job.trials, job.seed, split=job.split)
    return result.mean_total_reward, result.stderr, time.perf_counter() - started


def warm_gittins_table(key: tuple[float, int, int]) -> None:
    """Compute (or find in the disk cache) the Gittins table of (discount, truncation, pulls)."""
    from baselines.classical.gittins import gittins_table

    discount, truncation, pulls = key
    gittins_table(discount, truncation or None, max_pulls=pulls)


class JobPool:
    """Maps jobs over ``workers`` spawned processes (or this process when ``workers`` is 1)."""

    def __init__(self, workers: int):
        self.workers = workers
        self.pool = None

    def __enter__(self) -> JobPool:
        if self.workers > 1:
            context = multiprocessing.get_context("spawn")
            self.pool = ProcessPoolExecutor(self.workers, mp_context=context)
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def map(self, function, items: list) -> list:
        """``function`` over ``items``, results in order."""
        if self.pool is None:
            return [function(item) for item in items]
        return list(self.pool.map(function, items))


def _fixed_params(strategy: str, budget: Budget) -> tuple[tuple[str, Any], ...]:
    if strategy == "gittins" and budget.gittins_truncation > 0:
        return (("truncation", budget.gittins_truncation),)
    return ()


def _run_sorted(pool: JobPool, jobs: list[Job]) -> dict[Job, tuple[float, float, float]]:
    ordered = sorted(jobs, key=Job.cost, reverse=True)
    return dict(zip(ordered, pool.map(run_job, ordered), strict=True))


def run_classical(
    settings: list[Setting], budget: Budget, trials: int, seed: int, workers: int
) -> list[Cell]:
    """Tune and evaluate every classical cell of ``settings`` over ``workers`` processes.

    Three phases, each spread over the pool: the Gittins index tables (cached on disk), every
    grid value of every tuned strategy on ``tune`` trials, then every cell on ``trials`` held-out
    ``test`` trials with its chosen value.

    Args:
        settings: the rows to run.
        budget: tuning trials and the Gittins truncation.
        trials: held-out evaluation trials per cell.
        seed: seed of the task streams.
        workers: processes (1 runs in this process).
    """
    classical = [(c, s) for c, s in COLUMNS if s is not None]
    with JobPool(workers) as pool:
        if any(s == "gittins" for _, s in classical):
            grid = TUNING_GRIDS["gittins"][1]
            keys = {(d, budget.gittins_truncation, row.pulls) for d in grid for row in settings}
            pool.map(warm_gittins_table, sorted(keys, key=lambda k: (-k[2], -k[0])))
        tuning = _run_sorted(pool, _tuning_jobs(settings, classical, budget, seed))
        choices = _choices(tuning, seed)
        evaluations = []
        for row in settings:
            for column, strategy in classical:
                chosen = tuple(choices.get((row, strategy), {}).items())
                params = (*_fixed_params(strategy, budget), *chosen)
                evaluations.append(Job(column, strategy, row, params, trials, seed, "test"))
        results = _run_sorted(pool, evaluations)
    return [_cell(job, result, choices, tuning) for job, result in results.items()]


def _tuning_jobs(
    settings: list[Setting], classical: list[tuple[str, str]], budget: Budget, seed: int
) -> list[Job]:
    jobs = []
    for row in settings:
        for column, strategy in classical:
            if strategy not in TUNING_GRIDS:
                continue
            param, grid = TUNING_GRIDS[strategy]
            tune_trials = budget.ots_tune_trials if strategy == "ots" else budget.tune_trials
            fixed = _fixed_params(strategy, budget)
            jobs += [
                Job(column, strategy, row, (*fixed, (param, value)), tune_trials, seed, "tune")
                for value in grid
            ]
    return jobs


def _choices(tuning: dict[Job, tuple[float, float, float]], seed: int) -> dict[tuple, dict]:
    """The chosen grid value per (setting, strategy), as ``{param: value}``."""
    scores: dict[tuple, dict[Any, float]] = {}
    trials: dict[tuple, int] = {}
    for job, (mean, _, _) in tuning.items():
        scores.setdefault((job.setting, job.strategy), {})[job.params[-1][1]] = mean
        trials[(job.setting, job.strategy)] = job.trials
    return {key: choose(key[1], value, trials[key], seed).tuned for key, value in scores.items()}


def _cell(job: Job, result: tuple[float, float, float], choices, tuning) -> Cell:
    mean, stderr, seconds = result
    tuning_seconds = sum(
        r[2] for j, r in tuning.items() if (j.setting, j.strategy) == (job.setting, job.strategy)
    )
    return Cell(
        setting=job.setting.name,
        pulls=job.setting.pulls,
        arms=job.setting.arms,
        column=job.column,
        strategy=job.strategy,
        published=0.0,
        mean=mean,
        stderr=stderr,
        trials=job.trials,
        tuned=choices.get((job.setting, job.strategy), {}),
        seconds=seconds + tuning_seconds,
    )


def best_of_grid(
    table: list[Cell], budget: Budget, trials: int, seed: int, workers: int
) -> dict[tuple[str, str], Cell]:
    """The best grid value of every flagged tuned cell, scored on the cell's own held-out trials.

    This is how the published tuned columns were chosen (the best of the grid on the trials that
    report them), measured here for the cells that differ from them.

    Args:
        table: the cells, with published values.
        budget: the Gittins truncation.
        trials: held-out trials per cell (the same trials as the cells').
        seed: seed of the ``test`` stream.
        workers: processes (1 runs in this process).

    Returns:
        (setting, column) -> a cell whose ``tuned`` holds the best value (the first on a tie).
    """
    flagged = [cell for cell in table if cell.flagged and cell.strategy in TUNING_GRIDS]
    if not flagged:
        return {}
    jobs: dict[tuple[str, str], list[Job]] = {}
    for cell in flagged:
        param, grid = TUNING_GRIDS[cell.strategy]
        setting, fixed = Setting(cell.pulls, cell.arms), _fixed_params(cell.strategy, budget)
        jobs[(cell.setting, cell.column)] = [
            Job(cell.column, cell.strategy, setting, (*fixed, (param, value)), trials, seed, "test")
            for value in grid
        ]
    with JobPool(workers) as pool:
        results = _run_sorted(pool, [job for grid_jobs in jobs.values() for job in grid_jobs])
    best = {}
    for cell in flagged:
        grid_jobs = jobs[(cell.setting, cell.column)]
        top = max(grid_jobs, key=lambda job: (results[job][0], -grid_jobs.index(job)))
        mean, stderr, _ = results[top]
        best[(cell.setting, cell.column)] = Cell(
            cell.setting, cell.pulls, cell.arms, cell.column, cell.strategy, cell.published,
            mean=mean, stderr=stderr, trials=trials, tuned=dict(top.params[-1:]),
        )  # fmt: skip
    return best


# The RL² column -------------------------------------------------------------------------------


def rl2_available() -> bool:
    """True when an ``rl2`` algorithm is registered."""
    from baselines import algorithm_names

    return RL2_ALGORITHM in algorithm_names()


def rl2_cells(
    settings: list[Setting],
    budget: Budget,
    trials: int,
    seed: int,
    tracking_uri: str,
    experiment: str,
    algorithm: str = RL2_ALGORITHM,
) -> list[Cell]:
    """Train and evaluate ``algorithm`` on the settings whose pulls the budget names.

    Args:
        settings: the rows of the table.
        budget: which settings to train and the training overrides.
        trials: held-out evaluation trials.
        seed: the runs' seed.
        tracking_uri: MLflow store of the training runs.
        experiment: MLflow experiment of the training runs.
        algorithm: the algorithm that fills the column.
    """
    from benchmark.config import load_run_config
    from benchmark.runner import train_and_evaluate

    cells = []
    for setting in settings:
        if setting.pulls not in budget.rl2_pulls:
            continue
        overrides = [
            f"task.arms={setting.arms}",
            f"task.pulls={setting.pulls}",
            f"seed={seed}",
            f"eval.trials={trials}",
            *budget.rl2_overrides,
        ]
        spec = load_run_config(algorithm, "bernoulli-bandit", overrides)
        started = time.perf_counter()
        summary = train_and_evaluate(spec, tracking_uri, experiment, progress=False)
        cells.append(
            Cell(
                setting=setting.name,
                pulls=setting.pulls,
                arms=setting.arms,
                column="RL2",
                strategy=algorithm,
                published=0.0,
                mean=summary["mean_total_reward"],
                stderr=summary["stderr"],
                trials=int(summary["trials"]),
                seconds=time.perf_counter() - started,
                run_id=summary["run_id"],
                note=f"trained for {summary['env_steps']} env steps",
            )
        )
    return cells


def complete_table(
    settings: list[Setting], cells: list[Cell], published: dict[str, dict[str, float]]
) -> list[Cell]:
    """All cells of ``settings`` in table order, with published values; missing ones "not run"."""
    by_key = {(cell.setting, cell.column): cell for cell in cells}
    table = []
    for setting in settings:
        for column, strategy in COLUMNS:
            cell = by_key.get((setting.name, column))
            if cell is None:
                cell = Cell(
                    setting.name,
                    setting.pulls,
                    setting.arms,
                    column,
                    strategy or RL2_ALGORITHM,
                    0.0,
                    note="not run",
                )
            cell.published = published[setting.name][column]
            table.append(cell)
    return table


# Reporting ----------------------------------------------------------------------------------------


def format_cell(cell: Cell, refs: list[int]) -> str:
    """``published · ours ± SE · z`` (⚠ when flagged, [n] for footnotes)."""
    marks = ("" if not cell.flagged else " ⚠") + "".join(f" [{n}]" for n in refs)
    if cell.mean is None:
        return f"{cell.published:.1f} · {cell.note}{marks}"
    return f"{cell.published:.1f} · {cell.mean:.2f} ± {cell.stderr:.2f} · {cell.z:+.1f}{marks}"


def footnotes(
    table: list[Cell], best: dict[tuple[str, str], Cell] | None = None
) -> tuple[dict[tuple[str, str], list[int]], list[str]]:
    """Footnote references per cell and the footnote texts: one for every flagged cell.

    Args:
        table: the cells.
        best: :func:`best_of_grid` of the flagged tuned cells; a flagged cell without an entry
            gets :data:`UNEXPLAINED`.
    """
    texts: list[str] = []
    refs: dict[tuple[str, str], list[int]] = {}
    for cell in table:
        if not cell.flagged:
            continue
        found = (best or {}).get((cell.setting, cell.column))
        text = UNEXPLAINED if found is None else best_of_grid_note(cell, found)
        if text not in texts:
            texts.append(text)
        refs[(cell.setting, cell.column)] = [texts.index(text) + 1]
    return refs, texts


def best_of_grid_note(cell: Cell, best: Cell) -> str:
    """The footnote of a flagged tuned cell: its grid's best value on the same held-out trials."""
    (param, value), size = next(iter(best.tuned.items())), len(TUNING_GRIDS[cell.strategy][1])
    tuned = ", ".join(f"{k} = {v}" for k, v in cell.tuned.items()) or "its default"
    return (
        f"{cell.column} at {cell.setting}: the best of its {size} grid values scored on these "
        f"same {best.trials} held-out trials is {param} = {value}, {best.mean:.2f} ± "
        f"{best.stderr:.2f}, z = {best.z:+.1f} against the published value (the cell, "
        f"{tuned} tuned on the `tune` stream: {cell.mean:.2f}, z = {cell.z:+.1f})."
    )


def format_markdown(
    table: list[Cell], meta: dict[str, Any], best: dict[tuple[str, str], Cell] | None = None
) -> str:
    """The Markdown report: the comparison table, the tuned values and the notes.

    Args:
        table: the cells.
        meta: the invocation (command, budget, seed, commit, trials, timings, notes).
        best: :func:`best_of_grid` of the flagged tuned cells, for their footnotes.
    """
    refs, texts = footnotes(table, best)
    columns = [column for column, _ in COLUMNS]
    lines = [
        "# RL² Table 1 (Bernoulli bandits): published vs. metarl-bench",
        "",
        f"Command: `{meta['command']}` (budget {meta['budget']}, seed {meta['seed']}, "
        f"git {meta['git_commit'][:10]}).",
        f"Ours: mean total reward per trial ± standard error over {meta['trials']} held-out trials "
        f"per cell (`test` stream); hyperparameters tuned on the separate `tune` stream "
        f"({meta['tune_trials']} trials per grid value, OTS {meta['ots_tune_trials']}).",
        f"Classical cells, tuning included: {meta['classical_seconds']:.1f} s wall time with "
        f"{meta['workers']} worker process(es) on {meta['cpu_count']} CPU cores "
        f"({meta['classical_cpu_seconds']:.1f} CPU seconds in all).",
        "",
        "Each cell: published · ours ± SE · z, the difference in standard errors "
        "(ours, the published 1000-trial SE estimated from our per-trial spread, and the "
        "published rounding to 0.1). ⚠ marks |z| > 3.",
        "",
        "| pulls | arms | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for start in range(0, len(table), len(columns)):
        row = table[start : start + len(columns)]
        cells = [format_cell(cell, refs.get((cell.setting, cell.column), [])) for cell in row]
        lines.append(f"| {row[0].pulls} | {row[0].arms} | " + " | ".join(cells) + " |")
    lines += ["", "## Tuned hyperparameters (chosen on the `tune` stream)", ""]
    tuned_columns = [column for column, strategy in COLUMNS if strategy in TUNING_GRIDS]
    header = [f"{c} {TUNING_GRIDS[dict(COLUMNS)[c]][0]}" for c in tuned_columns]
    lines += ["| pulls | arms | " + " | ".join(header) + " |", "|---|---|" + "---|" * len(header)]
    for start in range(0, len(table), len(columns)):
        row = {cell.column: cell for cell in table[start : start + len(columns)]}
        values = [_tuned_text(row[c]) for c in tuned_columns]
        first = table[start]
        lines.append(f"| {first.pulls} | {first.arms} | " + " | ".join(values) + " |")
    lines += ["", "## Notes", ""]
    lines += [f"[{n}] {text}" for n, text in enumerate(texts, 1)]
    lines += [""] if texts else []
    lines += [f"- {note}" for note in (*PROTOCOL_NOTES, *meta.get("notes", []))]
    return "\n".join(lines) + "\n"


def _tuned_text(cell: Cell) -> str:
    return ", ".join(str(v) for v in cell.tuned.values()) if cell.tuned else "-"


CSV_FIELDS = [
    "setting",
    "pulls",
    "arms",
    "column",
    "strategy",
    "published",
    "mean",
    "stderr",
    "trials",
    "z",
    "flagged",
    "tuned",
    "seconds",
    "run_id",
    "note",
]


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
    metrics = [
        Metric(key, meta[key], stamp, 0) for key in ("classical_seconds", "classical_cpu_seconds")
    ]
    params = [Param(key, str(meta[key])) for key in ("budget", "trials", "seed", "settings")]
    params += [Param(key, str(meta[key])) for key in ("tune_trials", "ots_tune_trials", "workers")]
    for cell in table:
        prefix = f"{cell.setting}/{cell.column}"
        if cell.mean is not None:
            metrics += [Metric(f"{prefix}/mean", cell.mean, stamp, 0)]
            metrics += [Metric(f"{prefix}/stderr", cell.stderr, stamp, 0)]
            metrics += [Metric(f"{prefix}/z", cell.z, stamp, 0)]
        params += [Param(f"{prefix}/{key}", str(value)) for key, value in cell.tuned.items()]
    for start in range(0, len(params), 100):
        client.log_batch(run_id, params=params[start : start + 100])
    client.log_batch(run_id, metrics=metrics)
    for path in files:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED")
    return run_id


# Entry point --------------------------------------------------------------------------------------


def reproduce_rl2_table1(
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
    """Run the table, write ``<out>/rl2_table1.md`` and ``.csv``, log them to MLflow.

    Args:
        budget: smoke, quick or paper (see ``benchmark/configs/reproduce/rl2-table1.yaml``).
        trials: held-out trials per cell; None uses the budget's.
        settings: ``PULLSxARMS`` names; None or empty for all nine.
        out: directory of the written table.
        seed: seed of the tuning and evaluation streams (and of the RL² runs).
        workers: processes for the classical cells.
        skip_rl2: do not train the RL² column even when ``rl2`` is registered.
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
    started, cpu_started = time.perf_counter(), cpu_seconds()
    cells = run_classical(rows, chosen, trials, seed, workers)
    classical_seconds = time.perf_counter() - started
    classical_cpu = cpu_seconds() - cpu_started
    notes = [_rl2_note(chosen, skip_rl2)]
    if not skip_rl2 and rl2_available():
        cells += rl2_cells(rows, chosen, trials, seed, uri, experiment)
    table = complete_table(rows, cells, published)
    best = _best_of_grid_timed(table, chosen, trials, seed, workers, notes)
    meta = {
        "command": _command_line(budget, trials, settings, seed, workers, skip_rl2),
        **_invocation(budget, chosen, trials, seed, rows, workers),
        "classical_seconds": classical_seconds,
        "classical_cpu_seconds": classical_cpu,
        "notes": notes,
    }
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    markdown, table_csv = folder / "rl2_table1.md", folder / "rl2_table1.csv"
    markdown.write_text(format_markdown(table, meta, best))
    write_csv(table, table_csv)
    run_id = log_to_mlflow(table, meta, [markdown, table_csv], uri, experiment)
    return {
        "markdown": str(markdown),
        "csv": str(table_csv),
        "run_id": run_id,
        "classical_seconds": classical_seconds,
        "classical_cpu_seconds": classical_cpu,
        "total_seconds": time.perf_counter() - started,
        "flagged": sum(cell.flagged for cell in table),
        "cells": [asdict(cell) | {"z": cell.z} for cell in table],
    }


def _invocation(
    budget: str, chosen: Budget, trials: int, seed: int, rows: list[Setting], workers: int
) -> dict[str, Any]:
    """The invocation's settings, machine and commit, as the report's meta fields."""
    return {
        "budget": budget,
        "trials": trials,
        "seed": seed,
        "settings": " ".join(row.name for row in rows),
        "tune_trials": chosen.tune_trials,
        "ots_tune_trials": chosen.ots_tune_trials,
        "workers": workers,
        "cpu_count": multiprocessing.cpu_count(),
        "git_commit": git_tags()["git_commit"],
    }


def _best_of_grid_timed(
    table: list[Cell], budget: Budget, trials: int, seed: int, workers: int, notes: list[str]
) -> dict[tuple[str, str], Cell]:
    """:func:`best_of_grid`, with a note of its wall time appended to ``notes`` when it ran."""
    started = time.perf_counter()
    best = best_of_grid(table, budget, trials, seed, workers)
    if best:
        notes.append(
            f"Best-of-grid footnotes: every grid value of {len(best)} flagged tuned cell(s) on "
            f"the cells' own held-out trials, {time.perf_counter() - started:.1f} s wall time."
        )
    return best


def cpu_seconds() -> float:
    """CPU time of this process and of its finished (waited-for) child processes."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _command_line(
    budget: str, trials: int, settings: list[str] | None, seed: int, workers: int, skip_rl2: bool
) -> str:
    parts = [f"metarl-bench reproduce {TABLE} --budget {budget} --trials {trials}"]
    if settings:
        parts.append("--settings " + " ".join(settings))
    parts.append(f"--seed {seed} --workers {workers}")
    if skip_rl2:
        parts.append("--skip-rl2")
    return " ".join(parts)


def _rl2_note(budget: Budget, skip_rl2: bool) -> str:
    if skip_rl2:
        return "RL2: not run (--skip-rl2); the column shows the published value only."
    if not rl2_available():
        return "RL2: not run (no `rl2` algorithm is registered); the published value only."
    pulls = ", ".join(str(p) for p in budget.rl2_pulls) or "none"
    return (
        f"RL2: the suite's `rl2` trained per setting with this budget for pulls in {pulls} "
        "(far below the paper's training budget); other settings show the published value."
    )


REPRODUCIBLE = {TABLE: reproduce_rl2_table1}
"""Table name -> the function that reproduces it (``metarl-bench reproduce NAME``)."""
