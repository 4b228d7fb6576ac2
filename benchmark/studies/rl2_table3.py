"""RL² Table 3 (Duan et al. 2016): navigation in mazes, as its analogue on the 2-D ``maze`` family.

The paper trained RL² on first-person 3-D mazes of 5 x 5 cells with 2 episodes per trial and
evaluated it over 5 episodes on new 5 x 5 mazes and on 9 x 9 mazes with 4x the horizon. It reports
the mean length of each episode and %Improved, the share of trials whose second episode is no
longer than the first.

Here every learned run trains on ``maze`` with ``size=5`` and ``episodes=2`` (the pair YAML's
defaults otherwise). After training, :func:`measure_mazes` plays the trained policy on held-out
mazes (the ``test`` stream of the run's seed) of each row's size over 5 episodes: the 5 x 5 row
at the training horizon, the 9 x 9 row at 4x it. The evaluation's task is the training task with
``eval.task.*`` overrides on top (:func:`benchmark.run.config.heldout_task_params`), the same rule
as a run's held-out evaluation. Per row: the mean length of episodes 1..5 (an episode that misses
the goal counts the whole horizon), %Improved, and the paired difference episode 2 - episode 1
over the same trials, each with its standard error over trials; the cell is their mean over seeds.

Transfer from 5 x 5 to 9 x 9 is possible by construction: the observation is an egocentric
window of fixed size (``view`` x ``view`` cells of wall and goal flags, whatever the maze's size)
plus the previous action, reward and done flag, so the same network plays both sizes.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch

from benchmark.run.config import RunSpec, heldout_task_params
from benchmark.run.evaluation import play_recorded
from benchmark.studies.cells import Results
from benchmark.studies.inputs import Run, all_settings
from benchmark.studies.spec import Column, Setting, TableSpec
from tasks import make_task

FAMILY = "maze"
TRAIN_TASK = {"size": 5, "episodes": 2}
"""The training task: 5 x 5 mazes, 2 episodes per trial."""
EVAL_EPISODES = 5
"""Episodes per evaluation trial."""
LARGER_HORIZON = 4
"""A larger maze than the training one is evaluated at this multiple of the training horizon."""
EPISODES = tuple(f"episode_{k}" for k in range(1, EVAL_EPISODES + 1))
IMPROVED = "improved_pct"
DIFFERENCE = "episode_2_minus_1"


def train_overrides(setting: Setting) -> list[str]:
    """Every row's runs train on the same task (the rows differ in their evaluation only)."""
    return [f"task.{key}={value}" for key, value in TRAIN_TASK.items()]


def eval_overrides(setting: Setting, trained: dict[str, Any]) -> dict[str, Any]:
    """The ``eval.task.*`` overrides of a row: its size, 5 episodes, and 4x the training horizon
    where the maze is larger than the trained one."""
    overrides = {"size": setting.task()["size"], "episodes": EVAL_EPISODES}
    if overrides["size"] > trained["size"]:
        horizon = make_task(FAMILY, **trained).max_episode_steps
        overrides["max_steps"] = LARGER_HORIZON * horizon
    return overrides


def episode_statistics(steps: torch.Tensor) -> dict[str, list[float]]:
    """Per-trial episode lengths [N, episodes] as ``{metric: [value, SE over trials]}``: the mean
    length of each episode, %Improved (episode 2 no longer than episode 1) and the paired mean of
    episode 2 - episode 1."""
    trials = steps.shape[0]

    def mean_se(values: torch.Tensor) -> list[float]:
        se = values.std().item() / math.sqrt(trials) if trials > 1 else math.nan
        return [values.mean().item(), se]

    stats = {name: mean_se(steps[:, k]) for k, name in enumerate(EPISODES)}
    stats[IMPROVED] = mean_se(100.0 * (steps[:, 1] <= steps[:, 0]).float())
    stats[DIFFERENCE] = mean_se(steps[:, 1] - steps[:, 0])
    return stats


def measure_mazes(run: Run, spec: RunSpec, run_id: str, tracking_uri: str) -> dict[str, Any]:
    """Play the trained policy of ``run_id`` on every row's held-out mazes; per row (by setting
    name): :func:`episode_statistics`, the trials and the evaluation task."""
    from benchmark.run.restore import load_module

    module = load_module(run_id, tracking_uri)
    trained = spec.section("task")
    measured = {}
    for setting in all_settings(run.spec):
        params = heldout_task_params(FAMILY, trained, eval_overrides(setting, trained))
        family = make_task(FAMILY, **params)
        steps = play_recorded(module.make_policy(), family, run.trials, spec.seed).steps
        measured[setting.name] = {**episode_statistics(steps), "task": params}
    return measured


def maze_metrics(spec: TableSpec, setting: Setting, record: dict) -> dict[str, tuple]:
    """A run's row metrics from its ledger measurements."""
    row = json.loads(record["measurements"])[setting.name]
    return {name: tuple(row[name]) for name in (*EPISODES, IMPROVED, DIFFERENCE)}


def shape_section(run: Run, results: Results) -> list[str]:
    """Whether the second episode is shorter than the first, per row (the shape to compare)."""
    cells = {cell.key: cell for cell in results.table}
    lines = ["", "## The shape: a shorter second episode", ""]
    for setting in run.settings:
        cell = cells.get((setting.name, "ep 2 - ep 1"))
        if cell is None or cell.mean is None:
            continue
        half = cell.ci95 if cell.ci95 is not None else 1.96 * cell.stderr
        verdict = "shorter" if cell.mean + half < 0 else "not shown shorter"
        selected = ""
        if cell.selected_seed is not None:
            low = cell.selected_mean - 1.96 * cell.selected_stderr
            high = cell.selected_mean + 1.96 * cell.selected_stderr
            selected = (
                f"; selected seed {cell.selected_seed}: {cell.selected_mean:+.1f} steps, paired "
                f"95% CI over its trials [{low:+.1f}, {high:+.1f}]"
            )
        lines.append(
            f"- {setting.name}: episode 2 - episode 1 = {cell.mean:+.1f} ± {half:.1f} steps "
            f"(95% CI over n={len(cell.seeds)} seeds): {verdict}{selected}."
        )
    return lines if len(lines) > 3 else []


def _column(name: str, metric: str) -> Column:
    return Column(name, algorithm="rl2", metric=metric)


SPEC = TableSpec(
    name="rl2-table3",
    title="RL² Table 3 (navigation in mazes; 2-D analogue of a first-person 3-D task)",
    family=FAMILY,
    published_csv="rl2_table3_maze.csv",
    setting_params=(("size", "size"),),
    setting_name="{size}x{size}",
    setting_help="SIZExSIZE of the evaluation mazes",
    columns=(
        *(_column(f"ep {k}", name) for k, name in enumerate(EPISODES, 1)),
        _column("%Improved", IMPROVED),
        _column("ep 2 - ep 1", DIFFERENCE),
    ),
    score_text=(
        "RL² trained on 5 x 5 mazes with 2-episode trials; the mean length in steps of each "
        "episode of 5-episode trials (a missed goal counts the horizon), %Improved (trials whose "
        "2nd episode is no longer than the 1st) and the paired episode 2 - episode 1,"
    ),
    unexplained="Not compared: the published numbers come from a first-person 3-D task.",
    cost=lambda job: 1.0,
    published_digits=1,
    our_digits=1,
    notes=(
        "The published numbers cannot match: the paper's mazes are first-person 3-D (ViZDoom) "
        "with image input; ours are 2-D perfect mazes with an egocentric 3 x 3-cell view. "
        "Compare the shape: a shorter second episode, and the share of trials improved.",
        "The 5 x 5 row plays held-out 5 x 5 mazes at the training horizon; the 9 x 9 row plays "
        "9 x 9 mazes at 4x it. The view has the same size at every maze size, so the policy "
        "trained on 5 x 5 plays 9 x 9 unchanged.",
    ),
    train_overrides=train_overrides,
    run_metrics=maze_metrics,
    measure_run=measure_mazes,
    sections=(shape_section,),
    comparable=False,
)
"""RL² Table 3 (mazes)."""
