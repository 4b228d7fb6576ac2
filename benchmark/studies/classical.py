"""The classical cells: each strategy tuned on ``tune`` trials over its grid, evaluated on ``test``.

Every piece of work is a :class:`Job` (one strategy, setting, set of hyperparameters and stream),
run over a pool of spawned processes, longest first. A job's numbers depend only on the job (each
is seeded by the invocation's seed), so they do not depend on the number of processes. The grids
are the strategies' own (:func:`benchmark.run.tuning.grid_of`) and the choice is tuning's rule
(:func:`benchmark.run.tuning.best_value`) on the mean total reward.
"""

from __future__ import annotations

import math
import multiprocessing
import resource
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from baselines.strategies import get_strategy
from benchmark.run.evaluation import play_recorded
from benchmark.run.tuning import EVAL_SPLIT, TUNE_SPLIT, best_value, grid_of
from benchmark.studies.cells import Cell
from benchmark.studies.inputs import Run
from benchmark.studies.spec import Column, Setting
from tasks import make_task


@dataclass(frozen=True)
class Job:
    """One evaluation of a classical strategy: a grid value on tune trials, or a held-out cell."""

    family: str
    setting: Setting
    column: str
    strategy: str
    params: tuple[tuple[str, Any], ...]
    """Hyperparameters (a tuned one last)."""
    trials: int
    seed: int
    split: str
    normalised: bool
    """Score the trials against the oracle (and the random policy) of the same tasks."""


@dataclass(frozen=True)
class Measurement:
    """What a job measured."""

    mean: float
    """The score: the mean total reward, or its ratio to the oracle's when normalised."""
    stderr: float
    total_reward: float
    """Mean total reward per trial (what tuning compares)."""
    seconds: float
    vs_random: float | None = None
    """Mean total over the random policy's mean expected total (normalised jobs)."""
    vs_random_se: float | None = None


def normalised_score(totals: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """mean(totals) / mean(reference) and its delta-method standard error.

    Args:
        totals: total reward per trial [N].
        reference: a reference policy's expected total of the same trials [N].
    """
    ratio = (totals.mean() / reference.mean()).item()
    if totals.numel() < 2:
        return ratio, float("nan")
    residual = totals - ratio * reference
    stderr = residual.std().item() / math.sqrt(totals.numel()) / reference.mean().item()
    return ratio, stderr


def run_job(job: Job) -> Measurement:
    """Play one job's trials and score them."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    family = make_task(job.family, **job.setting.task())
    policy = get_strategy(job.strategy).build(family, dict(job.params))
    played = play_recorded(policy, family, job.trials, job.seed, split=job.split)
    totals, tasks = played.totals, played.tasks
    total = totals.mean().item()
    if not job.normalised:
        stderr = totals.std().item() / math.sqrt(job.trials) if job.trials > 1 else float("nan")
        return Measurement(total, stderr, total, time.perf_counter() - started)
    references = family.reference_scores(tasks)
    ratio, stderr = normalised_score(totals, references["oracle"])
    vs_random, vs_random_se = normalised_score(totals, references["random"])
    seconds = time.perf_counter() - started
    return Measurement(ratio, stderr, total, seconds, vs_random, vs_random_se)


class JobPool:
    """Maps work over ``workers`` spawned processes (or this process when ``workers`` is 1)."""

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

    def map(self, function: Callable, items: list) -> list:
        """``function`` over ``items``, results in order."""
        if self.pool is None:
            return [function(item) for item in items]
        return list(self.pool.map(function, items))

    def run(self, jobs: list[Job], cost: Callable[[Job], float]) -> dict[Job, Measurement]:
        """Every job, the costliest first."""
        ordered = sorted(jobs, key=cost, reverse=True)
        return dict(zip(ordered, self.map(run_job, ordered), strict=True))


def run_classical(run: Run) -> list[Cell]:
    """Tune and evaluate every classical cell (diagnostics included) of the run's settings.

    Three phases, each spread over the pool: the spec's preparation, every grid value of every
    tuned column on ``tune`` trials, then every cell on the run's held-out ``test`` trials with
    its chosen value.

    Args:
        run: the invocation.
    """
    spec = run.spec
    with JobPool(run.workers) as pool:
        if spec.prepare is not None:
            spec.prepare(run, pool)
        tuning = pool.run(tuning_jobs(run), spec.cost)
        chosen = choose(tuning)
        tuned = {key: tuple(values.items()) for key, values in chosen.items()}
        evaluations = [
            make_job(run, setting, column, tuned.get((setting.name, column.name), ()))
            for setting in run.settings
            for column in spec.classical_columns
        ]
        results = pool.run(evaluations, spec.cost)
    return [_cell(job, result, chosen, tuning) for job, result in results.items()]


def make_job(
    run: Run,
    setting: Setting,
    column: Column,
    tuned: tuple[tuple[str, Any], ...],
    split: str = EVAL_SPLIT,
    trials: int | None = None,
) -> Job:
    """The job of ``column`` at ``setting``: the budget's and the column's fixed values, then
    ``tuned``; on the run's held-out trials unless ``split`` and ``trials`` say otherwise."""
    fixed = (*run.budget.strategy_params.get(column.strategy, {}).items(), *column.fixed)
    return Job(
        run.spec.family, setting, column.name, column.strategy, (*fixed, *tuned),
        run.trials if trials is None else trials, run.seed, split, run.spec.normalised,
    )  # fmt: skip


def tuning_jobs(run: Run) -> list[Job]:
    """Every grid value of every tuned column at every setting, on ``tune`` trials."""
    jobs = []
    for setting in run.settings:
        for column in run.spec.classical_columns:
            grid = grid_of(column.strategy, run.spec.family)
            if grid is None:
                continue
            trials = run.budget.tune_trials_for(column.strategy)
            jobs += [
                make_job(run, setting, column, ((grid.param, value),), TUNE_SPLIT, trials)
                for value in grid.values
            ]
    return jobs


def choose(tuning: dict[Job, Measurement]) -> dict[tuple[str, str], dict[str, Any]]:
    """The chosen value per (setting, column), as ``{param: value}``: the best mean total reward."""
    scores: dict[tuple[str, str], dict[Any, float]] = {}
    jobs: dict[tuple[str, str], Job] = {}
    for job, result in tuning.items():
        key = (job.setting.name, job.column)
        scores.setdefault(key, {})[job.params[-1][1]] = result.total_reward
        jobs[key] = job
    chosen = {}
    for key, values in scores.items():
        grid = grid_of(jobs[key].strategy, jobs[key].family)
        chosen[key] = {grid.param: best_value(grid.values, values)}
    return chosen


def _cell(job: Job, result: Measurement, chosen, tuning: dict[Job, Measurement]) -> Cell:
    key = (job.setting.name, job.column)
    tuning_seconds = sum(r.seconds for j, r in tuning.items() if (j.setting.name, j.column) == key)
    return Cell(
        job.setting, job.column, job.strategy, mean=result.mean, stderr=result.stderr,
        trials=job.trials, total_reward=result.total_reward, tuned=chosen.get(key, {}),
        seconds=result.seconds + tuning_seconds, vs_random=result.vs_random,
        vs_random_se=result.vs_random_se,
    )  # fmt: skip


def best_of_grid(run: Run, cells: list[Cell]) -> dict[tuple[str, str], Cell]:
    """Every grid value of each of ``cells`` (those with a grid) scored on its held-out trials.

    This is how a published tuned column was chosen (the best of its grid on the very trials that
    report it), measured on ours.

    Args:
        run: the invocation (the held-out trials are its ``trials`` of the ``test`` stream).
        cells: the cells to score, with their published values.

    Returns:
        cell key -> a cell whose ``tuned`` holds the best value (the first on a tie).
    """
    grids = {cell.key: grid_of(cell.strategy, run.spec.family) for cell in cells}
    cells = [cell for cell in cells if grids[cell.key] is not None]
    if not cells:
        return {}
    jobs = {
        cell.key: [
            make_job(run, cell.setting, run.spec.column(cell.column), ((grids[cell.key].param, v),))
            for v in grids[cell.key].values
        ]
        for cell in cells
    }
    with JobPool(run.workers) as pool:
        results = pool.run([j for grid_jobs in jobs.values() for j in grid_jobs], run.spec.cost)
    best = {}
    for cell in cells:
        grid_jobs = jobs[cell.key]
        top = max(grid_jobs, key=lambda j: (results[j].mean, -grid_jobs.index(j)))
        best[cell.key] = Cell(
            cell.setting, cell.column, cell.strategy, cell.published, cell.rounding_sd,
            mean=results[top].mean, stderr=results[top].stderr, trials=run.trials,
            tuned=dict(top.params[-1:]),
        )  # fmt: skip
    return best


def cpu_seconds() -> float:
    """CPU time of this process and of its finished (waited-for) child processes."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
