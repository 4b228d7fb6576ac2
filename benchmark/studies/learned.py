"""The learned columns: trained and evaluated by the suite's algorithm at the budget's settings.

A learned run is an ordinary ``metarl-bench run`` (its own MLflow run, evaluated on the ``test``
stream of the invocation's seed); a setting the budget does not name shows the published value,
marked "not run".
"""

from __future__ import annotations

import time

from benchmark.run.tuning import EVAL_SPLIT
from benchmark.studies.cells import Cell
from benchmark.studies.inputs import Run
from benchmark.studies.spec import Column, Setting
from tasks import make_task, task_generator


def available(algorithm: str) -> bool:
    """True when ``algorithm`` is registered."""
    from baselines import algorithm_names

    return algorithm in algorithm_names()


def learned_cells(run: Run, tracking_uri: str, experiment: str) -> list[Cell]:
    """Train and evaluate every registered learned column at the settings the budget names.

    Args:
        run: the invocation (its seed and trials are the runs' seed and evaluation trials).
        tracking_uri: MLflow store of the training runs.
        experiment: MLflow experiment of the training runs.
    """
    return [
        learned_cell(run, column, setting, tracking_uri, experiment)
        for column in run.spec.learned_columns
        if available(column.algorithm)
        for setting in run.settings
        if setting.name in run.budget.learned_settings
    ]


def learned_cell(
    run: Run, column: Column, setting: Setting, tracking_uri: str, experiment: str
) -> Cell:
    """Train ``column``'s algorithm at ``setting`` and score its evaluation as the table does."""
    from benchmark.run.config import load_run_config
    from benchmark.run.runner import train_and_evaluate

    overrides = [*setting.overrides(), f"seed={run.seed}", f"eval.trials={run.trials}"]
    overrides += run.budget.learned_overrides
    config = load_run_config(column.algorithm, run.spec.family, overrides)
    started = time.perf_counter()
    summary = train_and_evaluate(config, tracking_uri, experiment, progress=False)
    total, stderr = summary["mean_total_reward"], summary["stderr"]
    mean = total
    if run.spec.normalised:
        oracle = oracle_mean(run, setting)
        mean, stderr = total / oracle, stderr / oracle
    return Cell(
        setting, column.name, column.algorithm, mean=mean, stderr=stderr,
        trials=int(summary["trials"]), total_reward=total, seconds=time.perf_counter() - started,
        run_id=summary["run_id"], note=f"trained for {summary['env_steps']} env steps",
    )  # fmt: skip


def oracle_mean(run: Run, setting: Setting) -> float:
    """The oracle's mean expected total over a learned run's evaluation tasks (``test`` stream)."""
    family = make_task(run.spec.family, **setting.task())
    tasks = family.sample(run.trials, task_generator(run.seed, EVAL_SPLIT))
    return family.reference_scores(tasks)["oracle"].mean().item()


def learned_note(run: Run, column: Column, skipped: bool) -> str:
    """The report's note on how ``column`` was filled in this invocation."""
    trained = [s.name for s in run.settings if s.name in run.budget.learned_settings]
    if skipped:
        reason = "not run (--skip-rl2)"
    elif not available(column.algorithm):
        reason = f"not run (no `{column.algorithm}` algorithm is registered)"
    elif not trained:
        reason = "not run by this budget"
    else:
        return (
            f"{column.name}: the suite's `{column.algorithm}` trained per setting with this "
            f"budget at {', '.join(trained)} (far below the paper's training budget); other "
            "settings show the published value."
        )
    return f"{column.name}: {reason}; the column shows the published value only."
