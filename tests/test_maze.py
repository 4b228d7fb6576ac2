"""The ``maze`` family: perfect random layouts, goal episodes, held-out pools, oracle, renders."""

from __future__ import annotations

from collections import deque

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from baselines.policy import OraclePolicy
from benchmark.cli import main
from benchmark.run.evaluation import evaluate_policy
from tasks import ConfigError, TrialEngine, make_task, task_generator
from tasks.maze import MOVES, START_CELL, carve_mazes, goal_distances, wall_grid

SMALL = {"size": 4, "pool": 64}


def _maze(**params):
    return make_task("maze", **{**SMALL, **params})


def _bfs_on_walls(walls: np.ndarray, start: tuple[int, int]) -> dict[tuple[int, int], int]:
    """Plain-Python BFS over the free squares of one wall grid (the naive reference)."""
    seen, queue = {start: 0}, deque([start])
    while queue:
        r, c = queue.popleft()
        for dr, dc in MOVES:
            nxt = (r + dr, c + dc)
            if not walls[nxt] and nxt not in seen:
                seen[nxt] = seen[(r, c)] + 1
                queue.append(nxt)
    return seen


@pytest.mark.parametrize("size", [2, 3, 5, 7])
def test_carved_layouts_are_perfect_mazes(size):
    passages = carve_mazes(32, size, torch.Generator().manual_seed(size))
    walls = wall_grid(passages, size).numpy()
    free = int((~walls).sum()) // 32
    for maze in walls:
        reached = _bfs_on_walls(maze, (1, 1))
        assert len(reached) == int((~maze).sum()), "a free square is unreachable"
        # A spanning tree of size^2 cells has size^2 - 1 passages: no loops.
        passages_open = int((~maze).sum()) - size * size
        assert passages_open == size * size - 1
    assert free == 2 * size * size - 1
    assert (passages.sum((1, 2)) == 2 * (size * size - 1)).all()
    assert len({maze.tobytes() for maze in walls}) > (1 if size == 2 else 16)


def test_goal_distances_match_a_naive_bfs_and_the_goal_is_reachable():
    family = _maze(size=5)
    tasks = family.sample(16, task_generator(0, "train"))
    for i in range(16):
        walls = tasks["walls"][i].numpy()
        goal = int(tasks["goal"][i])
        assert goal != START_CELL
        naive = _bfs_on_walls(walls, (2 * (goal // 5) + 1, 2 * (goal % 5) + 1))
        for cell in range(25):
            grid_distance = naive[(2 * (cell // 5) + 1, 2 * (cell % 5) + 1)]
            assert tasks["distance"][i, cell] == grid_distance // 2
    again = goal_distances(tasks["passages"], tasks["goal"])
    torch.testing.assert_close(again, tasks["distance"])


def test_walls_block_moves_and_open_passages_let_the_agent_through():
    family = _maze(size=5)
    generator = task_generator(1, "train")
    tasks = family.sample(64, generator)
    state = family.initial_state(tasks, generator)
    rows = torch.arange(64)
    for action in range(4):
        after, reward, _ = family.step(tasks, state, torch.full((64,), action), generator)
        blocked = ~tasks["passages"][rows, state["cell"], action]
        dr, dc = MOVES[action]
        r, c = state["cell"] // 5, state["cell"] % 5
        wall_square = tasks["walls"][rows, 2 * r + 1 + dr, 2 * c + 1 + dc]
        assert torch.equal(blocked, wall_square)
        assert torch.equal(after["cell"][blocked], state["cell"][blocked])
        assert torch.equal(after["cell"][~blocked], (state["cell"] + 5 * dr + dc)[~blocked])
        assert (reward[blocked] == -0.01).all()


def test_an_episode_ends_at_the_goal_and_restarts_at_the_start_in_the_same_maze():
    family = _maze(size=5, episodes=30)  # no trial ends within the longest first episode
    engine = TrialEngine(family, 8, task_generator(2, "train"))
    view = engine.start()
    first_walls = engine.tasks["walls"].clone()
    lengths = torch.zeros(8, dtype=torch.long)
    for _ in range(int(engine.tasks["distance"][:, START_CELL].max())):
        transition, view = engine.step(family.oracle_action(engine.tasks, engine.state))
        lengths += (transition.episode_index == 0).long()
        done = transition.episode_done
        assert (transition.reward[done] == 1.0).all() and (transition.reward[~done] == -0.01).all()
        assert (engine.state["cell"][done] == START_CELL).all() and view.prev_done[done].all()
        assert not transition.trial_done.any()
    assert torch.equal(engine.tasks["walls"], first_walls)
    assert torch.equal(lengths.float(), engine.tasks["distance"][:, START_CELL])


def test_the_oracle_reaches_the_goal_in_exactly_the_bfs_distance_and_scores_its_reference():
    family = _maze(size=6, pool=128)
    result = evaluate_policy(OraclePolicy(), family, 200, seed=3)
    assert result.normalized_score == pytest.approx(1.0, abs=1e-5)
    assert result.mean_total_reward == pytest.approx(result.oracle_reference, abs=1e-5)
    tasks = family.sample(200, task_generator(3, "test"))
    expected = tasks["distance"][:, START_CELL].mean().item()
    assert result.per_episode_steps == pytest.approx([expected, expected], rel=1e-6)


def test_random_reference_matches_a_monte_carlo_random_walk():
    family = _maze(size=3, max_steps=12)
    generator = task_generator(4, "test")
    tasks = family.sample(4, generator)
    exact = family.random_walk_value(tasks)
    repeats = 20000
    batch = {key: value.repeat_interleave(repeats, 0) for key, value in tasks.items()}
    state = family.initial_state(batch, generator)
    total = torch.zeros(4 * repeats)
    alive = torch.ones(4 * repeats, dtype=torch.bool)
    for _ in range(12):
        action = torch.randint(4, (4 * repeats,), generator=generator)
        state, reward, reached = family.step(batch, state, action, generator)
        total += reward * alive
        alive &= ~reached
    estimate = total.view(4, repeats).mean(1)
    torch.testing.assert_close(estimate, exact, atol=0.03, rtol=0.0)
    assert (exact < family.reference_scores(tasks)["oracle"] / 2).all()


def test_the_layout_changes_at_the_trial_boundary():
    family = _maze(size=4, max_steps=3)
    engine = TrialEngine(family, 16, task_generator(5, "train"))
    engine.start()
    before = family.task_keys(engine.tasks)
    for step in range(6):  # a wall-bumping policy never reaches the goal: two 3-step episodes
        transition, _ = engine.step(torch.zeros(16, dtype=torch.long))
        assert transition.trial_done.all() == (step == 5)
    after = family.task_keys(engine.tasks)
    assert sum(a != b for a, b in zip(before, after, strict=True)) >= 12


def test_seeding_is_deterministic_and_splits_draw_from_different_pools():
    family = _maze()
    first = family.sample(32, task_generator(0, "train"))
    again = make_task("maze", **SMALL).sample(32, task_generator(0, "train"))
    assert family.task_keys(first) == family.task_keys(again)
    other = family.sample(32, task_generator(1, "train"))
    assert family.task_keys(first) != family.task_keys(other)


@pytest.mark.slow
def test_held_out_pools_are_disjoint_from_training_pools_at_the_default_size():
    family = make_task("maze", pool=2048)
    train = set(family.task_keys(family.task_pool(task_generator(0, "train"))))
    layouts = {walls for walls, _ in train}
    assert len(train) == 2048 and len(layouts) == 2048
    for split in ("tune", "test"):
        held_out = family.task_keys(family.task_pool(task_generator(0, split)))
        assert not train & set(held_out)
        assert not layouts & {walls for walls, _ in held_out}


def test_observation_shows_the_walls_and_the_goal_around_the_agent():
    family = _maze(size=3, view=3)
    walls = torch.ones(1, 7, 7, dtype=torch.bool)
    walls[0, 1, 1:6] = False  # corridor along the top row: cells 0 - 1 - 2
    walls[0, 1:6, 5] = False  # and down the right column: cells 2 - 5 - 8
    tasks = {"walls": walls, "goal": torch.tensor([2])}
    obs = family.observe(tasks, {"cell": torch.tensor([1])})
    assert obs.shape == (1, family.obs_dim) and family.obs_dim == 49 + 9
    window = obs[0, :49].view(7, 7)
    # The window's centre (3, 3) is the agent's square (1, 3) of the grid; rows above are padding.
    assert window[:2].all() and not window[3, 1:6].any() and window[4, :5].all()
    goal_flags = obs[0, 49:].view(3, 3)
    assert goal_flags[1, 2] == 1 and goal_flags.sum() == 1


def test_renders_draw_walls_agent_and_goal():
    env = gym.make("metarl/Maze-v0", size=3, pool=8, render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    lines = text.splitlines()
    assert len(lines) == 7 and all(len(line) == 7 for line in lines)
    assert lines[1][1] == "A" and text.count("G") == 1 and set(text) <= set("#.AG\n")
    assert lines[0] == "#" * 7
    image = gym.make("metarl/Maze-v0", size=3, pool=8, render_mode="rgb_array")
    image.reset(seed=0)
    pixels = image.render()
    assert pixels.dtype == np.uint8 and pixels.shape == (56, 56, 3)
    assert tuple(pixels[12, 12]) == (220, 0, 0)  # the agent in the top-left cell
    assert gym.make("metarl/Maze-v0", size=3, pool=8).unwrapped.render() is None
    for mode in ("ansi", "rgb_array"):
        check_env(gym.make("metarl/Maze-v0", size=3, pool=8, render_mode=mode).unwrapped)


def test_a_family_without_drawings_refuses_a_render_mode():
    with pytest.raises(ConfigError, match="render_mode 'ansi' is not supported by tabular-mdp"):
        gym.make("metarl/TabularMDP-v0", render_mode="ansi")


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"size": 1}, "task.size must be an integer >= 2"),
        ({"view": 2}, "task.view must be an odd integer >= 1, got 2"),
        ({"view": 0}, "task.view must be an integer >= 1"),
        ({"episodes": 1}, "task.episodes must be an integer >= 2"),
        ({"max_steps": 0}, "task.max_steps must be an integer >= 1"),
        ({"step_cost": -0.1}, "task.step_cost must be a number in [0, 1)"),
        ({"pool": 0}, "task.pool must be an integer >= 1"),
    ],
)
def test_bad_parameters_are_one_line_config_errors(params, needle):
    with pytest.raises(ConfigError) as error:
        make_task("maze", **params)
    assert needle in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("task.size=1", "task.size must be an integer >= 2"),
        ("task.view=4", "task.view must be an odd integer >= 1, got 4"),
        ("task.episodes=1", "task.episodes must be an integer >= 2"),
    ],
)
def test_bad_parameters_through_the_cli_exit_2_in_one_line(override, needle, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(["run", "rl2", "maze", override]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "mlflow.db").exists()


class _BumpNorth:
    """A policy that always moves north: from the top-left start it never leaves the cell."""

    def begin(self, family, n, generator):
        self.n = n

    def act(self, view):
        return torch.zeros(view.phi.shape[0], dtype=torch.long)


def test_evaluation_reports_the_mean_length_of_every_episode_index():
    maze = _maze(size=3, max_steps=7, episodes=3)
    result = evaluate_policy(_BumpNorth(), maze, 16, seed=0)
    assert result.per_episode_steps == [7.0, 7.0, 7.0]
    assert result.per_episode_steps_stderr == [0.0, 0.0, 0.0]
    bandit = make_task("bernoulli-bandit", arms=3, pulls=4)
    result = evaluate_policy(_BumpNorth(), bandit, 8, seed=0)
    assert result.per_episode_steps == [1.0] * 4 and "per_episode_steps" in result.as_dict()
