"""One run, end to end: config -> family and algorithm -> DataModule -> Trainer.fit -> evaluation
-> MLflow (params, tags, metrics against env steps, config, checkpoint, evaluation JSON)."""

from __future__ import annotations

import json
import math
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.loggers.logger import Logger, rank_zero_experiment
from pytorch_lightning.utilities.exceptions import SIGTERMException

from baselines import MetaRLAlgorithm, get_algorithm_class
from benchmark.config import RunSpec
from benchmark.datamodule import MetaRLDataModule
from benchmark.evaluation import EvalResult, evaluate_policy
from benchmark.tracking import DEFAULT_EXPERIMENT, download_artifact, flatten, git_tags, make_logger
from tasks import ConfigError

CHECKPOINT_ARTIFACT = "checkpoints/final.ckpt"


def build_module(spec: RunSpec) -> MetaRLAlgorithm:
    """Instantiate the algorithm of ``spec`` for its family."""
    cls = get_algorithm_class(spec.algo_name)
    return cls(algo=spec.section("algo"), task_name=spec.task_name, task=spec.section("task"))


def make_trainer(spec: RunSpec, module: MetaRLAlgorithm, logger: Any, progress: bool) -> pl.Trainer:
    """A Lightning Trainer whose ``max_steps`` covers the run's environment-step budget.

    ``max_steps`` counts optimizer steps, so it is the number of rollout batches times the
    module's ``optimizer_steps_per_batch`` (several for PPO's epochs of minibatches).
    """
    steps_per_update = module.cfg.batch_size * module.rollout_length
    updates = max(1, math.ceil(spec.config.trainer.env_steps / steps_per_update))
    return pl.Trainer(
        max_steps=updates * module.optimizer_steps_per_batch,
        max_epochs=-1,
        accelerator=spec.config.trainer.accelerator,
        devices=1,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=progress,
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


def fit_and_evaluate(spec: RunSpec, logger: Any, progress: bool) -> FitOutcome:
    """Seed, build, train and evaluate one run; training metrics go to ``logger``.

    Args:
        spec: the validated run config.
        logger: a Lightning logger (MLflow for ``run``; an in-memory one inside a sweep worker).
        progress: show Lightning's progress bar.
    """
    torch.set_num_threads(spec.config.trainer.threads)
    pl.seed_everything(spec.seed, verbose=False)
    module = build_module(spec)
    trainer = make_trainer(spec, module, logger, progress)
    started = time.perf_counter()
    trainer.fit(module, MetaRLDataModule(spec.seed))
    train_seconds = time.perf_counter() - started
    return FitOutcome(module, trainer, evaluate_module(module, spec), train_seconds)


def run_tags(spec: RunSpec) -> dict[str, str]:
    """The tags of a run: git commit and dirty flag, config hash, algorithm and task names."""
    tags = {**git_tags(), "config_hash": spec.config_hash(), "algorithm": spec.algo_name}
    return {**tags, "task": spec.task_name}


def train_and_evaluate(
    spec: RunSpec, tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT, progress: bool = True
) -> dict[str, Any]:
    """Train one run, evaluate it on held-out tasks and record everything in MLflow.

    Args:
        spec: the validated run config.
        tracking_uri: MLflow store.
        experiment: MLflow experiment name.
        progress: show Lightning's progress bar.

    Returns:
        the run's summary: run_id, evaluation numbers, env_steps, train_seconds.
    """
    logger = make_logger(
        tracking_uri, experiment, f"{spec.algo_name}/{spec.task_name}", run_tags(spec)
    )
    status = "FAILED"
    try:
        logger.log_hyperparams(flatten(OmegaConf.to_container(spec.config, resolve=True)))
        fit = fit_and_evaluate(spec, logger, progress)
        env_steps = int(fit.module.env_steps)
        summary = summarise(logger.run_id, fit.result, env_steps, fit.train_seconds)
        log_results(logger, spec, fit.trainer, fit.result, summary)
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


def evaluate_module(module: MetaRLAlgorithm, spec: RunSpec) -> EvalResult:
    """The end-of-run held-out evaluation."""
    seed = spec.config.eval.seed
    module.eval()
    return evaluate_policy(
        module.make_policy(),
        module.family,
        int(spec.config.eval.trials),
        spec.seed if seed is None else int(seed),
        device=module.device,
    )


def summarise(run_id: str, result: EvalResult, env_steps: int, seconds: float) -> dict[str, Any]:
    """The run's summary line (what ``run --json`` prints)."""
    return {
        "run_id": run_id,
        "mean_total_reward": result.mean_total_reward,
        "stderr": result.stderr,
        "trials": result.trials,
        "normalized_score": result.normalized_score,
        "regret": result.regret,
        "env_steps": env_steps,
        "train_seconds": seconds,
    }


def log_results(logger, spec: RunSpec, trainer: pl.Trainer, result: EvalResult, summary) -> None:
    """Log evaluation metrics, the adaptation curve and the artifacts to the run."""
    logger.log_metrics(eval_metrics(result, summary["train_seconds"]), step=summary["env_steps"])
    client, run_id = logger.experiment, logger.run_id
    with tempfile.TemporaryDirectory() as tmp:
        for path, folder in write_artifacts(spec, trainer, result, Path(tmp)):
            client.log_artifact(run_id, str(path), folder)


def eval_metrics(result: EvalResult, train_seconds: float) -> dict[str, float]:
    """The end-of-run metrics of a learned run."""
    return {
        "eval/mean_total_reward": result.mean_total_reward,
        "eval/stderr": result.stderr,
        "eval/normalized_score": result.normalized_score,
        "eval/regret": result.regret,
        "train_seconds": train_seconds,
    }


def write_artifacts(
    spec: RunSpec, trainer: pl.Trainer, result: EvalResult, folder: Path
) -> list[tuple[Path, str | None]]:
    """Write the run's artifacts into ``folder``; return (file, artifact folder) pairs.

    Args:
        spec: the run config (saved as ``config.yaml``).
        trainer: the fitted trainer (saves ``checkpoints/final.ckpt``).
        result: the evaluation (saved as ``evaluation.json``, with the adaptation curve).
        folder: an existing local directory.
    """
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(spec.config))
    (folder / "evaluation.json").write_text(json.dumps(result.as_dict(), indent=2))
    trainer.save_checkpoint(folder / "final.ckpt", weights_only=False)
    return [
        (folder / "config.yaml", None),
        (folder / "evaluation.json", None),
        (folder / "final.ckpt", "checkpoints"),
    ]


def load_module(reference: str, tracking_uri: str) -> MetaRLAlgorithm:
    """Load a trained module from a checkpoint path or an MLflow run id.

    Args:
        reference: a ``.ckpt`` path, or the id of a run that logged ``checkpoints/final.ckpt``.
        tracking_uri: the MLflow store that holds the run.
    """
    path = Path(reference)
    if path.is_file():
        return _load_checkpoint(path)
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = download_artifact(tracking_uri, reference, CHECKPOINT_ARTIFACT, Path(tmp))
        except (MlflowException, OSError) as error:
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ConfigError(
                f"'{reference}' is not a strategy, a checkpoint file or a run id with a "
                f"checkpoint in {tracking_uri} ({message})"
            ) from None
        return _load_checkpoint(local)


def _load_checkpoint(path: Path) -> MetaRLAlgorithm:
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    cls = get_algorithm_class(checkpoint["algorithm_class"])
    module = cls.load_from_checkpoint(path, map_location="cpu", weights_only=False)
    module.eval()
    return module
