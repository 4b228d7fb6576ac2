"""One run, end to end: config -> family and algorithm -> DataModule -> Trainer.fit -> evaluation
-> MLflow (params, tags, metrics against env steps, config, checkpoint, evaluation JSON)."""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.loggers.logger import Logger, rank_zero_experiment
from pytorch_lightning.utilities.exceptions import SIGTERMException

from baselines import MetaRLAlgorithm, get_algorithm_class
from benchmark.run.checkpoints import (
    ARTIFACT_DIR,
    FINAL,
    LAST,
    ResumableCheckpoints,
    module_payload,
    training_state,
    write_checkpoint,
)
from benchmark.run.config import RunSpec, heldout_task
from benchmark.run.datamodule import MetaRLDataModule
from benchmark.run.evaluation import (
    EvalResult,
    evaluate_policy,
    evaluation_record,
    result_metrics,
)
from benchmark.run.tracking import (
    DEFAULT_EXPERIMENT,
    HOST,
    PID,
    flatten,
    git_tags,
    make_logger,
    task_tags,
)
from tasks import make_task

CHECKPOINT_ARTIFACT = f"{ARTIFACT_DIR}/{FINAL}"
RESUME_ARTIFACT = f"{ARTIFACT_DIR}/{LAST}"


def build_module(spec: RunSpec) -> MetaRLAlgorithm:
    """Instantiate the algorithm of ``spec`` for its family."""
    cls = get_algorithm_class(spec.algo_name)
    return cls(algo=spec.section("algo"), task_name=spec.task_name, task=spec.section("task"))


def make_trainer(
    spec: RunSpec,
    module: MetaRLAlgorithm,
    logger: Any,
    progress: bool,
    callbacks: list[pl.Callback] | None = None,
) -> pl.Trainer:
    """A Lightning Trainer whose ``max_steps`` covers the run's environment-step budget.

    ``max_steps`` counts optimizer steps, so it is the number of rollout batches times the
    module's ``optimizer_steps_per_batch`` (several for PPO's epochs of minibatches).
    """
    from benchmark.run.progress import RunProgress

    steps_per_update = module.cfg.batch_size * module.rollout_length
    updates = max(1, math.ceil(spec.config.trainer.env_steps / steps_per_update))
    callbacks = list(callbacks or [])
    if progress:  # env steps against the budget, in place of Lightning's batch counter
        callbacks.append(RunProgress(spec.config.trainer.env_steps))
    return pl.Trainer(
        max_steps=updates * module.optimizer_steps_per_batch,
        max_epochs=-1,
        accelerator=spec.config.trainer.accelerator,
        devices=1,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,  # the suite's own checkpoints: benchmark.run.checkpoints
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=False,
    )


class MemoryLogger(Logger):
    """A Lightning logger that keeps metrics in memory (for the driver to write to MLflow)."""

    def __init__(self):
        super().__init__()
        self.history: list[tuple[str, float, int, int]] = []

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> str:
        return "0"

    @property
    @rank_zero_experiment
    def experiment(self) -> None:
        return None

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Params are logged by the driver from the job's resolved config."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Record (key, value, step, timestamp in ms) for every metric."""
        stamp = int(time.time() * 1000)
        for key, value in metrics.items():
            self.history.append((key, float(value), int(step or 0), stamp))


@dataclass
class FitOutcome:
    """A trained and evaluated module, before anything is recorded."""

    module: MetaRLAlgorithm
    trainer: pl.Trainer
    result: EvalResult
    train_seconds: float
    checkpoint_seconds: float = 0.0
    """Of ``train_seconds`` in this process, the time spent writing resumable checkpoints."""
    wall_seconds: float = 0.0
    """Wall time of training and evaluation in the process that finished the run."""
    cpu_seconds: float = 0.0
    """CPU time of training and evaluation (:func:`cpu_time`: that process's threads and the child
    processes it waited for, such as LSTM-A3C's workers)."""
    heldout: EvalResult | None = None
    """The evaluation on ``eval.task``'s held-out distribution; None without ``eval.task``."""
    heldout_task: dict[str, Any] | None = None
    """The held-out family's parameters (``task.*`` with ``eval.task.*`` on top)."""


def fit_and_evaluate(
    spec: RunSpec,
    logger: Any,
    progress: bool,
    checkpoint_path: Path | None = None,
    on_checkpoint: Callable[[Path], None] | None = None,
    resume: dict | None = None,
    checkpoint_extra: Callable[[], dict] | None = None,
) -> FitOutcome:
    """Seed, build, train and evaluate one run; training metrics go to ``logger``.

    Args:
        spec: the validated run config.
        logger: a Lightning logger (MLflow for ``run``; an in-memory one inside a sweep worker).
        progress: show the run's progress.
        checkpoint_path: where the resumable checkpoint is written every
            ``trainer.checkpoint_every`` env steps (None: not written).
        on_checkpoint: called with the path after each checkpoint is written.
        resume: a resumable checkpoint (:func:`benchmark.run.checkpoints.read_checkpoint`) of this
            run to continue from; on the CPU the run then ends exactly as if never interrupted.
        checkpoint_extra: plain-data fields added to each resumable checkpoint (see
            :class:`benchmark.run.checkpoints.ResumableCheckpoints`).
    """
    wall, cpu = time.perf_counter(), cpu_time()
    torch.set_num_threads(spec.config.trainer.threads)
    pl.seed_everything(spec.seed, verbose=False)
    module = build_module(spec)
    if resume is not None:
        module.load_state_dict(resume["module"])
    payload = checkpoint_fields(spec)
    every = int(spec.config.trainer.checkpoint_every)
    checkpoints = ResumableCheckpoints(
        payload, every, checkpoint_path, on_checkpoint, resume, checkpoint_extra
    )
    trainer = make_trainer(spec, module, logger, progress, [checkpoints])
    data = MetaRLDataModule(spec.seed, resume["training"]["data"] if resume else None)
    trainer.fit(module, data)
    train_seconds = checkpoints.train_seconds()
    result = evaluate_module(module, spec)
    outcome = FitOutcome(module, trainer, result, train_seconds, checkpoints.write_seconds)
    outcome.heldout_task = heldout_task(spec)
    if outcome.heldout_task is not None:
        outcome.heldout = evaluate_module(module, spec, outcome.heldout_task)
    outcome.wall_seconds = time.perf_counter() - wall
    outcome.cpu_seconds = cpu_time() - cpu
    return outcome


def cpu_time() -> float:
    """CPU seconds so far of this process (all threads) and of its terminated child processes
    that were waited for (an asynchronous learner's workers, joined when training ends)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def checkpoint_fields(spec: RunSpec, module: MetaRLAlgorithm | None = None) -> dict[str, Any]:
    """The checkpoint of ``module`` trained under ``spec`` (without a module: the fixed fields)."""
    return module_payload(spec.algo_name, spec.task_name, spec.config, module)


def run_tags(spec: RunSpec) -> dict[str, str]:
    """The tags of a run: git commit and dirty flag, config hash, algorithm and task names, the
    family's version, and the host and pid of the process that trains it."""
    tags = {**git_tags(), "config_hash": spec.config_hash(), "algorithm": spec.algo_name}
    return {**tags, **task_tags(spec.task_name), **owner_tags()}


def owner_tags() -> dict[str, str]:
    """This process as the owner of a run."""
    return {HOST: socket.gethostname(), PID: str(os.getpid())}


def train_and_evaluate(
    spec: RunSpec, tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT, progress: bool = True
) -> dict[str, Any]:
    """Train one run, evaluate it on held-out tasks and record everything in MLflow.

    Args:
        spec: the validated run config.
        tracking_uri: MLflow store.
        experiment: MLflow experiment name.
        progress: show the run's progress.

    Returns:
        the run's summary: run_id, evaluation numbers, env_steps, train_seconds.
    """
    logger = make_logger(
        tracking_uri, experiment, f"{spec.algo_name}/{spec.task_name}", run_tags(spec)
    )

    def log_config() -> None:
        logger.log_hyperparams(flatten(OmegaConf.to_container(spec.config, resolve=True)))
        logger.experiment.log_text(logger.run_id, OmegaConf.to_yaml(spec.config), "config.yaml")

    return train_logged(spec, logger, progress, resume=None, start=log_config)


def train_logged(
    spec: RunSpec,
    logger: Any,
    progress: bool,
    resume: dict | None,
    start: Callable[[], None] | None = None,
) -> dict:
    """Train (or continue) and evaluate under an open MLflow run, then close it with its status.

    ``start`` (logging the run's config) runs first, inside the same guard.
    """
    status = "FAILED"
    client, run_id = logger.experiment, logger.run_id
    try:
        if start is not None:
            start()
        with tempfile.TemporaryDirectory() as tmp:

            def log_checkpoint(path: Path) -> None:
                client.log_artifact(run_id, str(path), ARTIFACT_DIR)

            path = Path(tmp) / LAST
            fit = fit_and_evaluate(spec, logger, progress, path, log_checkpoint, resume)
        summary = summarise(run_id, fit)
        log_results(logger, spec, fit, summary)
        status = "FINISHED"
        return summary
    except (KeyboardInterrupt, SystemExit) as stop:
        # Lightning turns Ctrl-C into SystemExit(1) and SIGTERM into SIGTERMException, a
        # SystemExit with no code (status 0); an interrupted run must not look successful.
        status = "KILLED"
        raise SystemExit(interrupted_exit_code(stop)) from None
    finally:
        logger.end_run(status)


def interrupted_exit_code(stop: BaseException) -> int:
    """The exit status of a run stopped by a signal: 128 + the signal's number, as a shell reports.

    Args:
        stop: the KeyboardInterrupt or SystemExit that ended training.
    """
    if isinstance(stop, SIGTERMException):
        return 128 + signal.SIGTERM
    code = getattr(stop, "code", None)
    if isinstance(stop, KeyboardInterrupt) or code == 1:  # Lightning's exit after Ctrl-C
        return 128 + signal.SIGINT
    return code if isinstance(code, int) and code != 0 else 1


def evaluate_module(
    module: MetaRLAlgorithm, spec: RunSpec, heldout: dict[str, Any] | None = None
) -> EvalResult:
    """The end-of-run evaluation: on the training distribution, or with ``heldout`` (the
    parameters from :func:`benchmark.run.config.heldout_task`) on the held-out one, with the
    same trials and test-stream seed."""
    seed = spec.config.eval.seed
    module.eval()
    trials, seed = int(spec.config.eval.trials), spec.seed if seed is None else int(seed)
    family = module.family if heldout is None else make_task(spec.task_name, **heldout)
    return evaluate_policy(module.make_policy(), family, trials, seed, module.device)


def summarise(run_id: str, fit: FitOutcome) -> dict[str, Any]:
    """The run's summary line (what ``run --json`` prints)."""
    result = fit.result
    return {
        "run_id": run_id,
        "mean_total_reward": result.mean_total_reward,
        "stderr": result.stderr,
        "trials": result.trials,
        "normalized_score": result.normalized_score,
        "regret": result.regret,
        "env_steps": int(fit.module.env_steps),
        "train_seconds": fit.train_seconds,
        "checkpoint_seconds": fit.checkpoint_seconds,
    }


def log_results(logger, spec: RunSpec, fit: FitOutcome, summary: dict[str, Any]) -> None:
    """Log evaluation metrics, the adaptation curve and the artifacts to the run."""
    metrics = eval_metrics(fit)
    logger.log_metrics(metrics, step=summary["env_steps"])
    client, run_id = logger.experiment, logger.run_id
    with tempfile.TemporaryDirectory() as tmp:
        for path, folder in write_artifacts(spec, fit, Path(tmp)):
            client.log_artifact(run_id, str(path), folder)


def eval_metrics(fit: FitOutcome) -> dict[str, float]:
    """The end-of-run metrics of a learned run."""
    heldout = {} if fit.heldout is None else result_metrics(fit.heldout, "heldout")
    return {
        **result_metrics(fit.result, "eval"),
        **heldout,
        "train_seconds": fit.train_seconds,
        "checkpoint_seconds": fit.checkpoint_seconds,
        "wall_seconds": fit.wall_seconds,
        "cpu_seconds": fit.cpu_seconds,
    }


def write_artifacts(spec: RunSpec, fit: FitOutcome, folder: Path) -> list[tuple[Path, str | None]]:
    """Write the run's artifacts into ``folder``; return (file, artifact folder) pairs.

    Args:
        spec: the run config (saved as ``config.yaml``).
        fit: the trained module (saved with its training state as ``checkpoints/final.ckpt``)
            and its evaluation (saved as ``evaluation.json``, with the adaptation curve).
        folder: an existing local directory.
    """
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(spec.config))
    record = evaluation_record(fit.result, fit.heldout, fit.heldout_task)
    (folder / "evaluation.json").write_text(json.dumps(record, indent=2))
    payload = checkpoint_fields(spec, fit.module)
    payload["training"] = training_state(fit.trainer, fit.module, fit.train_seconds)
    write_checkpoint(payload, folder / FINAL)
    return [
        (folder / "config.yaml", None),
        (folder / "evaluation.json", None),
        (folder / FINAL, ARTIFACT_DIR),
    ]
