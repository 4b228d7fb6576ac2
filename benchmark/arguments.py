"""The command line's arguments: one parser per command, built from shared option parents.

Every option that several commands take is declared once (:func:`common_options`). A command's
parser reads its arguments with ``parse_intermixed_args``, so ``key=value`` overrides and options
come in any order. A usage error is one line and exit status 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

EXIT_USAGE = 2
DESCRIPTION = "metarl-bench: a benchmark suite for meta-reinforcement learning"


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {self.prog}: {one_line(message)}\n")


def one_line(message: str) -> str:
    """``message`` with line breaks and other control characters escaped (``\\n``, ``\\r``)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in message)


def seed_argument(text: str) -> int:
    """The argparse type of a ``--seed`` option: an integer in [0, 2**32 - 1]."""
    from benchmark.run.config import SEED_RANGE, check_seed

    try:
        return check_seed(int(text))
    except ValueError:  # int() failed, or check_seed's ConfigError (a ValueError)
        raise argparse.ArgumentTypeError(f"must be {SEED_RANGE}, got '{text}'") from None


def common_options(*names: str) -> OneLineParser:
    """A parent parser with the options several commands share, each declared once here.

    Args:
        names: which of ``tracking-uri``, ``json``, ``experiment`` to include.
    """
    parent = OneLineParser(add_help=False)
    declared = {
        "tracking-uri": ("--tracking-uri", {"default": None, "help": "MLflow tracking URI"}),
        "json": ("--json", {"action": "store_true", "help": "last stdout line is a JSON summary"}),
        "experiment": ("--experiment", {"default": None, "help": "MLflow experiment name"}),
        "algorithm": (
            "--algorithm",
            {
                "metavar": "MODULE:CLASS",
                "default": None,
                "help": "the plug-in algorithm a checkpoint names (imported only when named)",
            },
        ),
        "seed": ("--seed", {"type": seed_argument, "default": 0, "help": "0 to 2**32 - 1"}),
    }
    for name in names:
        flag, options = declared[name]
        parent.add_argument(flag, **options)
    return parent


def command_parsers() -> dict[str, OneLineParser]:
    """One parser per command; overrides (``key=value``) and options may come in any order."""
    common = common_options("tracking-uri")
    made: dict[str, OneLineParser] = {}

    def command(name: str, help_text: str, *shared: str) -> OneLineParser:
        parents = [common, common_options(*shared)] if shared else [common]
        made[name] = OneLineParser(
            prog=f"metarl-bench {name}", description=help_text, parents=parents
        )
        return made[name]

    command("list", "registered algorithms, strategies and tasks")

    run = command(
        "run", "train and evaluate one algorithm on a family", "json", "experiment", "algorithm"
    )
    run.add_argument("algo", nargs="?")
    run.add_argument("task", nargs="?")
    run.add_argument(
        "overrides", nargs="*", help="key=value, e.g. task.arms=5 algo.lr=0.001 seed=1"
    )
    run.add_argument("--resume", metavar="RUN_ID", help="continue a KILLED or FAILED run")
    run.add_argument(
        "--from",
        dest="rerun",
        metavar="RUN_ID|CONFIG",
        help="rerun a stored run's resolved config (a config.yaml needs ALGO TASK)",
    )

    evaluate = command(
        "evaluate", "evaluate a strategy, checkpoint or run id", "json", "algorithm", "seed"
    )
    evaluate.add_argument("policy", help="a strategy name, a checkpoint path or an MLflow run id")
    evaluate.add_argument("task")
    evaluate.add_argument("overrides", nargs="*", help="task.* and strategy.* key=value")
    evaluate.add_argument("--trials", type=int, default=1000)
    evaluate.add_argument("--tune-trials", type=int, default=None, help="default: --trials")

    add_study_commands(command)
    return made


def add_study_commands(command: Callable[..., OneLineParser]) -> None:
    """The parsers of reproduce, sweep, table and perf, made by :func:`command_parsers`'s maker.

    Args:
        command: makes a command's parser from its name, help text and shared options.
    """
    reproduce = command("reproduce", "reproduce a published table", "json", "experiment", "seed")
    reproduce.add_argument("table", help="a published table (see the error for the valid ones)")
    reproduce.add_argument("--budget", default="quick", help="a budget of the table's YAML")
    reproduce.add_argument("--trials", type=int, default=None, help="held-out trials per cell")
    reproduce.add_argument("--settings", nargs="+", default=None, help="10x5 (table1), 10 (table2)")
    reproduce.add_argument("--out", default="results", help="directory of the written table")
    reproduce.add_argument("--workers", type=int, default=2, help="processes for classical cells")
    reproduce.add_argument(
        "--columns",
        default="all",
        help="all, learned or classical: compute only these columns (the others come from the "
        "report and the ledger in --out)",
    )
    reproduce.set_defaults(experiment="reproduce")

    sweep = command("sweep", "run a grid of algorithms x tasks x seeds, resumably")
    sweep.add_argument("config", help="a built-in sweep (quick, bandits, full) or a YAML path")
    sweep.add_argument("overrides", nargs="*", help="seeds=5, trainer.env_steps=10000, ...")
    sweep.add_argument("--launcher", default="local", help="local (process pool) or ray")
    sweep.add_argument("--workers", type=int, default=None, help="parallel runs (default: cores)")
    sweep.add_argument("--ray-address", default=None, help="Ray cluster to join (default: local)")
    sweep.add_argument(
        "--dry-run",
        action="store_true",
        help="print the grid and its estimated cost (runs, env steps, CPU-hours); start nothing",
    )
    sweep.add_argument(
        "--ledger",
        default=None,
        help="a run-records CSV: its runs count as finished, and each finished run is merged "
        "into it (resume across stores and machines)",
    )

    table = command("table", "comparison table of an experiment's runs", "experiment")
    table.add_argument("--baseline", default=None, help="P(improvement) baseline (default a2c)")
    table.add_argument("--format", default="markdown", help="markdown, csv, latex or json")
    table.add_argument("--out", default=None, help="also write the table to this file")
    table.add_argument(
        "--from",
        dest="sources",
        nargs="+",
        metavar="FILE",
        default=None,
        help="build the table from run-record CSVs (or globs) instead of MLflow",
    )
    table.add_argument(
        "--export-runs", metavar="FILE", default=None, help="merge the runs' records into this CSV"
    )
    table.add_argument(
        "--where",
        nargs="+",
        metavar="KEY=VALUE",
        default=None,
        help="only the runs with these values (seed=0,1,2 pulls=10 algorithm=rl2)",
    )
    table.add_argument(
        "--normalise-to",
        default="oracle",
        help="upper reference of normalised scores: oracle (the revealed-task runs' mean where "
        "the family has no oracle) or revealed (theirs wherever task.reveal=true runs exist)",
    )
    table.add_argument(
        "--criteria",
        action="store_true",
        help="append the reference criteria per setting: the best meta-learner against a2c, "
        "its normalised score against 0.8, its later episodes against its first",
    )

    add_compare_command(command)

    perf = command("perf", "training speed against the plain PyTorch parity loop", "json")
    perf.add_argument("--quick", action="store_true", help="fewer repetitions (for tests)")
    perf.add_argument(
        "--families",
        nargs="*",
        metavar="FAMILY",
        default=None,
        help="instead: env steps/s on these families (none named: every installed one), "
        "written to results/throughput.csv and results/perf.md",
    )
    perf.add_argument(
        "--algorithms",
        nargs="+",
        metavar="ALGO",
        default=None,
        help="with --families: the learned algorithms measured (default rl2; 'all': every one)",
    )
    perf.add_argument(
        "--time-to-quality",
        action="store_true",
        help="instead: seconds of training for rl2 and lstm-a2c to reach 95%% of Gittins and "
        "RL²'s published value (within 3 SE) on 5 arms x 100 pulls (3 seeds each)",
    )


def add_compare_command(command: Callable[..., OneLineParser]) -> None:
    """The parser of ``compare``, made by :func:`command_parsers`'s maker.

    Args:
        command: makes a command's parser from its name, help text and shared options.
    """
    compare = command("compare", "run one algorithm and set it beside the stored baselines")
    compare.add_argument("algo", help="a registered algorithm or module:Class")
    compare.add_argument(
        "--against",
        nargs="+",
        metavar="FILE|EXPERIMENT",
        default=None,
        help="run-record CSVs, globs or an MLflow experiment (default: results/reference/*.csv)",
    )
    compare.add_argument("--families", nargs="+", default=None, help="only these families")
    compare.add_argument(
        "--settings", nargs="+", default=None, help="only settings with these words, e.g. 'arms=5'"
    )
    compare.add_argument("--seeds", type=int, default=None, help="the first N stored seeds")
    compare.add_argument("--budget", type=int, default=None, help="env steps for the algorithm")
    compare.add_argument(
        "--allow-mismatch", action="store_true", help="show rows of another protocol, marked"
    )
    compare.add_argument("--format", default="markdown", help="markdown, csv, latex or json")
    compare.add_argument("--out", default=None, help="also write the table to this file")
    compare.add_argument("--launcher", default="local", help="local (process pool) or ray")
    compare.add_argument("--workers", type=int, default=None, help="parallel runs (default: cores)")
    compare.add_argument("--ray-address", default=None, help="Ray cluster to join (default: local)")


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """The command and its arguments; ``--tracking-uri`` may also come before the command.

    The command's own parser reads the rest with ``parse_intermixed_args``, so overrides and
    options may come in any order (``sweep quick --launcher ray seeds=2``).
    """
    parsers = command_parsers()
    top = OneLineParser(
        prog="metarl-bench",
        description="metarl-bench: a benchmark suite for meta-reinforcement learning",
    )
    top.add_argument("--tracking-uri", default=None, help="MLflow tracking URI")
    top.add_argument("command", choices=list(parsers), help="; ".join(parsers))
    top.add_argument("rest", nargs=argparse.REMAINDER)
    head = top.parse_args(argv)
    args = parsers[head.command].parse_intermixed_args(head.rest)
    args.command = head.command
    args.tracking_uri = args.tracking_uri or head.tracking_uri
    return args
