"""The ``metarl-bench`` command line (also ``python -m benchmark``).

Every user error (unknown name or key, wrong type, impossible value) prints one line naming it and
the valid choices on stderr and exits with status 2, before any run is started or anything is
written (a sweep's worker pool, started first so that it imports while the sweep is validated, is
stopped).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from benchmark.arguments import EXIT_USAGE, one_line, parse_arguments
from tasks import ConfigError, require


def cmd_list(args: argparse.Namespace) -> int:
    """Print the registered algorithms, strategies and task families with their parameters."""
    from baselines import algorithm_names
    from baselines.strategies import strategy_names
    from tasks import TASKS

    print("algorithms: " + " ".join(algorithm_names()))
    print("strategies: " + " ".join(strategy_names()))
    print("tasks (parameter=default, {choices} of a categorical one):")
    for name in sorted(TASKS):
        params = [describe_parameter(spec) for spec in dataclasses.fields(TASKS[name].Config)]
        print("\n".join(wrap_items(params, f"  {name:<20} ", LIST_WIDTH)))
    return 0


LIST_WIDTH = 100
"""Line width of ``list``'s parameter lines."""


def describe_parameter(spec: dataclasses.Field) -> str:
    """``name=default`` of a config field, plus ``{a,b,c}`` when it is categorical.

    Args:
        spec: a dataclass field (a default or a ``default_factory``; ``metadata["choices"]``).
    """
    default = spec.default
    if default is dataclasses.MISSING and spec.default_factory is not dataclasses.MISSING:
        default = spec.default_factory()
    text = f"{spec.name}={'null' if default is None else default}"
    choices = spec.metadata.get("choices")
    return f"{text} {{{','.join(choices)}}}" if choices else text


def wrap_items(items: list[str], first: str, width: int) -> list[str]:
    """``items`` joined by commas into lines of at most ``width`` (an item is never split).

    The first line starts with ``first``; later lines are indented as far.
    """
    lines, line = [], first
    for index, item in enumerate(items):
        if index and len(line) + len(item) + 2 > width:
            lines.append(line + ",")
            line = " " * len(first) + item
        else:
            line += (", " if index else "") + item
    return [*lines, line]


def cmd_run(args: argparse.Namespace) -> int:
    """Train one algorithm on one family, evaluate it, and record it in MLflow."""
    from benchmark.run.restore import resume_run
    from benchmark.run.runner import train_and_evaluate
    from benchmark.run.tracking import DEFAULT_EXPERIMENT, resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    if args.resume is not None:
        given = [args.algo, args.task, *args.overrides, args.rerun and f"--from {args.rerun}"]
        require(
            not any(given),
            f"run --resume takes no algorithm, task or overrides (the run's checkpoint holds "
            f"its config), got: {' '.join(item for item in given if item)}",
        )
        summary = resume_run(args.resume, uri, progress=not args.json, plugin=args.algorithm)
    else:
        spec = run_spec(args, uri)
        experiment = args.experiment or DEFAULT_EXPERIMENT
        summary = train_and_evaluate(spec, uri, experiment, progress=not args.json)
    _print_summary(summary, args.json)
    return 0


def run_spec(args: argparse.Namespace, uri: str):
    """The spec of ``run``: from ALGO TASK and overrides, or a stored run's config (``--from``)."""
    from benchmark.run.config import load_run_config
    from benchmark.run.restore import rerun_spec

    if args.rerun is None:
        require(args.algo and args.task, "run needs ALGO and TASK, or --resume RUN_ID")
        return load_run_config(args.algo, args.task, args.overrides)
    given = [item for item in (args.algo, args.task, *args.overrides) if item]
    # With a run id its tags name the algorithm and the task; a config file needs them given.
    extra = [item for item in given if "=" in item] if Path(args.rerun).is_file() else given
    require(
        not extra,
        f"run --from reruns a stored config exactly and takes no overrides (nor ALGO TASK with "
        f"a run id), got: {' '.join(extra)}",
    )
    spec, notes = rerun_spec(args.rerun, uri, args.algo, args.task, args.algorithm)
    for note in notes:
        print(note, file=sys.stderr)
    return spec


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a strategy, a checkpoint or an MLflow run on held-out trials."""
    from benchmark.run.policies import behaviour_lines, evaluate_reference

    payload = evaluate_reference(
        args.policy,
        args.task,
        args.overrides,
        args.trials,
        args.seed,
        args.tracking_uri,
        tune_trials=args.tune_trials,
        plugin=args.algorithm,
    )
    if args.json:
        print(json.dumps(payload))
        return 0
    heldout = payload.pop("heldout", None) or {}
    sections = (payload, {f"heldout {key}": value for key, value in heldout.items()})
    width = max(20, *(len(key) for section in sections for key in section))
    for section in sections:
        behaviour = {key: section.pop(key) for key in list(section) if key.endswith("behaviour")}
        _print_summary(section, False, width)
        for key, value in behaviour.items():  # the family's statistics, one per line
            print(f"{key:>{width}}:" + ("" if value else " none"))
            for line in behaviour_lines(value or {}):
                print(f"{'':>{width + 2}}{line}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Reproduce a published table: run it, compare, write results/ and log to MLflow."""
    from benchmark.studies.pipeline import reproduce
    from benchmark.studies.registry import get_table

    summary = reproduce(
        get_table(args.table),
        budget=args.budget,
        trials=args.trials,
        settings=args.settings,
        out=args.out,
        seed=args.seed,
        workers=args.workers,
        columns=args.columns,
        tracking_uri=args.tracking_uri,
        experiment=args.experiment,
    )
    if args.json:
        print(json.dumps(summary))
    else:
        print(Path(summary["markdown"]).read_text())
        print(f"wrote {summary['markdown']} and {summary['csv']}; MLflow run {summary['run_id']}")
        print(f"classical cells: {summary['classical_seconds']:.1f} s")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run a sweep (resumable, in parallel) and print its comparison table.

    The local pool starts first: its workers import the training stack while this process imports,
    validates the sweep and opens the store. On a user error or when nothing is left to run, the
    idle workers are stopped before the command returns. With ``--ledger`` the table printed is the
    ledger's (``table --from LEDGER``): every run of the campaign, on whichever machine it ran.
    """
    from benchmark.sweeps.launchers import LocalLauncher, check_launcher

    ledger = Path(args.ledger) if args.ledger else None
    if args.dry_run:  # the grid and its cost only: no pool, no store
        from benchmark.sweeps.cost import dry_run
        from benchmark.sweeps.grid import load_sweep

        print(dry_run(load_sweep(args.config, args.overrides), ledger))
        return 0
    check_launcher(args.launcher, args.workers, args.ray_address)
    pool = LocalLauncher(args.workers) if args.launcher == "local" else None
    try:
        from benchmark.reporting.table import table_command
        from benchmark.run.tracking import resolve_tracking_uri
        from benchmark.sweeps.driver import sweep_command

        def render(experiment: str, uri: str, results: Path) -> None:
            # With a ledger: the campaign's table, every machine's runs.
            if ledger is not None and ledger.is_file():
                table_command(None, None, "markdown", None, uri, results, sources=[str(ledger)])
            else:
                table_command(experiment, None, "markdown", None, uri, results)

        return sweep_command(
            args.config,
            args.overrides,
            args.launcher,
            args.workers,
            resolve_tracking_uri(args.tracking_uri),
            args.ray_address,
            started=pool,
            render=render,
            ledger=ledger,
        )
    finally:
        if pool is not None:
            pool.close(cancel=True)


def cmd_table(args: argparse.Namespace) -> int:
    """Compare the runs of an experiment (or of run records): per-setting CIs, IQM, probability
    of improvement; optionally merge the experiment's run records into a ledger."""
    from benchmark.reporting.table import table_command
    from benchmark.run.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    return table_command(
        args.experiment,
        args.baseline,
        args.format,
        args.out,
        uri,
        sources=args.sources,
        export_runs=args.export_runs,
        normalise_to=args.normalise_to,
        where=args.where,
        criteria=args.criteria,
    )


def cmd_compare(args: argparse.Namespace) -> int:
    """Run one algorithm on the stored baselines' protocol; print it beside them, with verdicts."""
    from benchmark.run.tracking import resolve_tracking_uri
    from benchmark.sweeps.compare import compare_command

    return compare_command(args.algo, vars(args), resolve_tracking_uri(args.tracking_uri))


def cmd_perf(args: argparse.Namespace) -> int:
    """Measure training speed against the plain-PyTorch parity loop."""
    from benchmark.studies.perf import format_table, run_perf

    require(
        args.families is None or not args.time_to_quality,
        "perf takes --families or --time-to-quality, not both",
    )
    require(args.algorithms is None or args.families is not None, "--algorithms needs --families")
    if args.families is not None:
        from benchmark.studies.perf_families import run_family_perf

        rows = run_family_perf(args.families, args.quick, algorithms=args.algorithms)
    elif args.time_to_quality:
        from benchmark.studies.time_to_quality import time_to_quality_rows

        rows = time_to_quality_rows()
        print(format_table([{k: v for k, v in row.items() if k != "runs"} for row in rows]))
    else:
        rows = run_perf(quick=args.quick)
    if args.json:
        print(json.dumps(rows))
    return 0


def _print_summary(summary: dict, as_json: bool, width: int = 20) -> None:
    if as_json:
        print(json.dumps(summary))
        return
    for key, value in summary.items():
        if isinstance(value, float):
            value = f"{value:.4f}"
        print(f"{key:>{width}}: {value}")


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": cmd_list,
    "run": cmd_run,
    "evaluate": cmd_evaluate,
    "perf": cmd_perf,
    "sweep": cmd_sweep,
    "table": cmd_table,
    "compare": cmd_compare,
    "reproduce": cmd_reproduce,
}


NOISE = (
    "Tip:",
    "GPU available",
    "TPU available",
    "HPU available",
    "stopped: `max_steps",
    "`weights_only` was not set",
    "LOCAL_RANK",
    "You are using a CUDA device",
)


def _not_noise(record: logging.LogRecord) -> bool:
    return not any(fragment in record.getMessage() for fragment in NOISE)


def quiet_libraries() -> None:
    """Keep stdout for results: drop Lightning's routine info lines and deprecation noise.

    Lines that matter (such as "Detected KeyboardInterrupt, attempting graceful shutdown") stay.
    """
    for name in ("pytorch_lightning", "lightning.pytorch"):
        for logger_name in (name, f"{name}.utilities.rank_zero"):
            logger = logging.getLogger(logger_name)
            logger.addFilter(_not_noise)
            for handler in logger.handlers:  # records of child loggers reach these handlers
                handler.addFilter(_not_noise)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, dispatch, and turn a ConfigError into one line and exit status 2."""
    args = parse_arguments(sys.argv[1:] if argv is None else list(argv))
    quiet_libraries()
    try:
        return COMMANDS[args.command](args)
    except ConfigError as error:
        print(f"error: {one_line(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the reader went away (``metarl-bench list | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
