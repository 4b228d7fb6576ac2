"""Random-layout 2-D mazes, after RL²'s navigation task (Duan et al. 2016, section 4.3).

Every trial draws one *perfect* maze (a spanning tree of a ``size`` x ``size`` cell grid: every
cell reachable, exactly one path between two cells) and one goal cell. The layout and the goal stay
fixed for the ``episodes`` episodes of the trial and are redrawn at the trial boundary. Every
episode starts in the top-left cell (cell 0, fixed for all trials); the goal is uniform over the
other cells. An action (0 = north, 1 = east, 2 = south, 3 = west) moves the agent one cell when no
wall blocks it and leaves it in place otherwise. Reaching the goal pays +1 and ends the episode
(the agent restarts in cell 0 of the same maze); every other step costs ``step_cost`` (0.01); an
episode is truncated after ``max_steps`` steps (default 4 x the number of cells).

Observation (partial, egocentric): the wall flags of the wall grid in a window of ``view`` x
``view`` cells centred on the agent ((4k + 3)^2 squares for ``view = 2k + 1``; squares outside the
maze read as walls), followed by ``view`` x ``view`` goal flags (1 where the goal cell is in the
window). The trial engine appends phi's previous action, reward and done flag.

Layouts: a vectorised randomized depth-first search (recursive backtracker) carves the mazes, all
of a batch in lockstep (``2 (cells - 1)`` iterations of batched tensor ops). Because the trial
engine calls ``sample`` whenever any slot's trial ends (almost every step once trials have
different lengths), ``sample`` does not carve: each task stream (each ``task_generator(seed,
split)``, identified by its seed) owns a pool of ``pool`` (layout, goal) tasks carved once from a
generator derived from the stream's seed, and ``sample`` draws pool entries uniformly with the
stream's generator. Train, tune and test pools are carved from different seeds; the default 5 x 5
grid has about 5.6 x 10^8 spanning trees and 25 goals, so a test task equals a training task only
by a small chance. ``task_keys`` returns one hashable per task (the packed wall grid and the goal)
to check this; ``tests/test_maze.py`` measures the overlap of train and test pools. The family is
not a finite task set (``finite_tasks`` is False); for tiny grids (``size`` 2 or 3) the layouts do
repeat across splits.

References (exact, batched): the BFS distance of every cell to the goal is computed once per pool
entry. ``oracle`` follows the shortest path: per episode 1 - step_cost * (d - 1) for the start's
distance d. ``random`` is the uniform random walk, evaluated exactly by finite-horizon dynamic
programming over ``max_steps`` steps (no Monte-Carlo).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tasks.base import EnvState, FamilyConfig, TaskBatch, TaskFamily, require
from tasks.registry import register_task

MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))
"""(row, column) offset of the actions north, east, south, west."""

START_CELL = 0
"""Every episode starts in the top-left cell."""

POOLS_KEPT = 8
"""Task pools kept per family instance (oldest dropped first; gym resets make new streams)."""


def neighbour_table(size: int) -> torch.Tensor:
    """Index of the neighbour of every cell in every direction, -1 outside the grid: long [C, 4]."""
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    columns = []
    for dr, dc in MOVES:
        r, c = rows + dr, cols + dc
        inside = (r >= 0) & (r < size) & (c >= 0) & (c < size)
        columns.append(torch.where(inside, r * size + c, -1).flatten())
    return torch.stack(columns, 1)


def carve_mazes(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Carve ``n`` perfect mazes by randomized depth-first search, in lockstep over the batch.

    Every iteration pushes a random unvisited neighbour of each maze's stack top (carving the wall
    between them) or pops the stack when there is none; every maze makes ``cells - 1`` pushes and
    at most as many pops, so ``2 (cells - 1)`` iterations carve them all.

    Args:
        n: number of mazes.
        size: cells per side.
        generator: drives the search (its device is used).

    Returns:
        bool [n, C, 4]: ``open[m, cell, d]`` is True when no wall blocks the move d from cell.
    """
    device, cells = generator.device, size * size
    table = neighbour_table(size).to(device)
    rows = torch.arange(n, device=device)
    passages = torch.zeros(n, cells, 4, dtype=torch.bool, device=device)
    visited = torch.zeros(n, cells, dtype=torch.bool, device=device)
    stack = torch.zeros(n, cells, dtype=torch.long, device=device)
    stack[:, 0] = torch.randint(cells, (n,), generator=generator, device=device)
    visited[rows, stack[:, 0]] = True
    depth = torch.ones(n, dtype=torch.long, device=device)
    for _ in range(2 * (cells - 1)):
        top = stack[rows, (depth - 1).clamp(min=0)]
        neighbours = table[top]
        free = (neighbours >= 0) & ~visited.gather(1, neighbours.clamp(min=0))
        scores = torch.rand(n, 4, generator=generator, device=device).masked_fill(~free, -1.0)
        direction = scores.argmax(1)
        push = free.any(1) & (depth > 0)
        target = neighbours[rows, direction].clamp(min=0)
        passages[rows, top, direction] |= push
        passages[rows, target, (direction + 2) % 4] |= push
        visited[rows, target] |= push
        slot = depth.clamp(max=cells - 1)
        stack[rows, slot] = torch.where(push, target, stack[rows, slot])
        depth = torch.where(push, depth + 1, (depth - 1).clamp(min=0))
    return passages


def wall_grid(passages: torch.Tensor, size: int) -> torch.Tensor:
    """The (2 size + 1)^2 wall grid of mazes: bool [n, G, G], True for a wall square.

    Cell (r, c) sits at grid square (2r + 1, 2c + 1); the square between two neighbouring cells is
    free when the passage between them is open.
    """
    n, grid = passages.shape[0], 2 * size + 1
    walls = torch.ones(n, grid, grid, dtype=torch.bool, device=passages.device)
    by_cell = passages.view(n, size, size, 4)
    walls[:, 1::2, 1::2] = False
    walls[:, 1::2, 2:-1:2] = ~by_cell[:, :, :-1, 1]  # east passages
    walls[:, 2:-1:2, 1::2] = ~by_cell[:, :-1, :, 2]  # south passages
    return walls


def goal_distances(passages: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """BFS distance (in moves) of every cell to the goal, batched: float [n, C].

    Relaxation d(cell) = min(d(cell), 1 + d(open neighbour)) until nothing changes (at most
    ``cells - 1`` rounds); unreachable cells keep ``inf``.
    """
    n, cells, _ = passages.shape
    size = int(round(cells**0.5))
    table = neighbour_table(size).to(passages.device)
    distance = torch.full((n, cells), float("inf"), device=passages.device)
    distance[torch.arange(n, device=passages.device), goal] = 0.0
    for _ in range(cells - 1):
        through = distance[:, table.clamp(min=0)].masked_fill(~passages, float("inf"))
        relaxed = torch.minimum(distance, through.min(2).values + 1.0)
        if torch.equal(relaxed, distance):
            break
        distance = relaxed
    return distance


@dataclass
class MazeConfig(FamilyConfig):
    """Random perfect mazes with a random goal, drawn afresh for every trial."""

    size: int = 5
    """Cells per side of the maze (size x size cells). The default is the largest size at which RL²
    was measured to use its memory (a shorter second episode; docs/tuning.md)."""
    view: int = 3
    """Side of the agent's egocentric window in cells (odd)."""
    episodes: int = 2
    """Episodes per trial in the same maze (>= 2, so there is something to remember)."""
    max_steps: int | None = None
    """Steps after which an episode is truncated; None: 4 x size^2."""
    step_cost: float = 0.01
    """Cost of every step that does not reach the goal (reaching it pays +1)."""
    pool: int = 4096
    """(layout, goal) tasks carved once per task stream; sample draws from them."""

    def __post_init__(self):
        _require_int(self.size, "task.size", 2, "a maze needs at least 2 x 2 cells")
        _require_int(self.view, "task.view", 1, "odd")
        require(self.view % 2 == 1, f"task.view must be an odd integer >= 1, got {self.view}")
        _require_int(self.episodes, "task.episodes", 2, "to remember the maze")
        if self.max_steps is not None:
            _require_int(self.max_steps, "task.max_steps", 1, "or null for 4 x size^2")
        require(
            isinstance(self.step_cost, (int, float)) and 0.0 <= self.step_cost < 1.0,
            f"task.step_cost must be a number in [0, 1), got {self.step_cost}",
        )
        _require_int(self.pool, "task.pool", 1, "tasks per stream")


def _require_int(value, key: str, low: int, why: str) -> None:
    require(
        isinstance(value, int) and not isinstance(value, bool) and value >= low,
        f"{key} must be an integer >= {low} ({why}), got {value}",
    )


@register_task
class Maze(TaskFamily):
    """Perfect mazes with a random goal; a trial is several episodes in the same maze."""

    name = "maze"
    gym_id = "metarl/Maze-v0"
    Config = MazeConfig
    render_modes = ("ansi", "rgb_array")
    success_steps = 1
    """Success: an episode reaches the goal (its terminating step) before it is truncated."""

    def __init__(self, config: MazeConfig):
        super().__init__(config)
        self.cells = config.size * config.size
        self.table = neighbour_table(config.size)
        self._pools: dict[tuple[int, str], TaskBatch] = {}

    # Shape of the family ----------------------------------------------------------------------
    @property
    def window(self) -> int:
        """Side of the observed wall-grid window in squares (4k + 3 for view = 2k + 1)."""
        return 2 * self.config.view + 1

    @property
    def obs_dim(self) -> int:
        return self.window**2 + self.config.view**2

    @property
    def obs_bounds(self) -> tuple[float, float]:
        return (0.0, 1.0)

    @property
    def num_actions(self) -> int:
        return 4

    @property
    def max_episode_steps(self) -> int:
        return self.config.max_steps or 4 * self.cells

    @property
    def episodes_per_trial(self) -> int:
        return self.config.episodes

    # Sampling ----------------------------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator) -> TaskBatch:
        pool = self.task_pool(generator)
        index = torch.randint(self.config.pool, (n,), generator=generator, device=generator.device)
        return {key: value[index] for key, value in pool.items()}

    def task_pool(self, generator: torch.Generator) -> TaskBatch:
        """The (layout, goal) pool of the stream of ``generator``, carved on first use.

        The pool depends only on the generator's seed (``initial_seed``), not on how much of the
        stream was consumed, so every ``sample`` of a stream draws from the same pool.
        """
        key = (generator.initial_seed(), str(generator.device))
        if key not in self._pools:
            if len(self._pools) >= POOLS_KEPT:
                self._pools.pop(next(iter(self._pools)))
            self._pools[key] = self._carve_pool(key[0], generator.device)
        return self._pools[key]

    def _carve_pool(self, stream: int, device: torch.device) -> TaskBatch:
        digest = hashlib.sha256(f"maze-pool:{stream}".encode()).digest()
        carver = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
        count, cells = self.config.pool, self.cells
        passages = carve_mazes(count, self.config.size, carver)
        goal = 1 + torch.randint(cells - 1, (count,), generator=carver)
        pool = {
            "walls": wall_grid(passages, self.config.size),
            "passages": passages,
            "goal": goal,
            "distance": goal_distances(passages, goal),
        }
        return {key: value.to(device) for key, value in pool.items()}

    def task_keys(self, tasks: TaskBatch) -> list[tuple[bytes, int]]:
        """One hashable per task, equal for equal tasks: (packed wall grid, goal cell)."""
        walls = tasks["walls"].flatten(1).cpu().numpy()
        packed = np.packbits(walls, axis=1)
        goals = tasks["goal"].cpu().tolist()
        return [(row.tobytes(), goal) for row, goal in zip(packed, goals, strict=True)]

    # Stepping ----------------------------------------------------------------------------------
    def initial_state(self, tasks: TaskBatch, generator: torch.Generator) -> EnvState:
        n, device = tasks["goal"].shape[0], tasks["goal"].device
        return {"cell": torch.full((n,), START_CELL, dtype=torch.long, device=device)}

    def observe(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        walls, cell = tasks["walls"], state["cell"]
        n, size, view = cell.shape[0], self.config.size, self.config.view
        half = self.window // 2
        padded = F.pad(walls.float(), (half, half, half, half), value=1.0).flatten(1)
        side = walls.shape[1] + 2 * half
        offsets = torch.arange(self.window, device=cell.device)
        window = offsets.view(-1, 1) * side + offsets.view(1, -1)
        # The padding shifts the grid by `half`: the window's top-left square is the agent's square.
        top_left = (2 * (cell // size) + 1) * side + 2 * (cell % size) + 1
        wall_flags = padded.gather(1, top_left.view(n, 1) + window.view(1, -1))
        k = view // 2
        goal_row = tasks["goal"] // size - cell // size + k
        goal_col = tasks["goal"] % size - cell % size + k
        seen = (goal_row >= 0) & (goal_row < view) & (goal_col >= 0) & (goal_col < view)
        goal_flags = torch.zeros(n, view * view, device=cell.device)
        goal_flags[seen, (goal_row * view + goal_col)[seen]] = 1.0
        return torch.cat([wall_flags, goal_flags], 1)

    def step(self, tasks, state, action, generator):
        cell = state["cell"]
        rows = torch.arange(cell.shape[0], device=cell.device)
        table = self.table.to(cell.device)
        moved = tasks["passages"][rows, cell, action]
        next_cell = torch.where(moved, table[cell, action], cell)
        reached = next_cell == tasks["goal"]
        reward = torch.where(reached, 1.0, -self.config.step_cost).float()
        return {"cell": next_cell}, reward, reached

    def success_signal(self, tasks, state, terminated):
        """The step reached the goal."""
        return terminated

    # References --------------------------------------------------------------------------------
    def reference_scores(self, tasks: TaskBatch) -> dict[str, torch.Tensor]:
        cost, steps, episodes = self.config.step_cost, self.max_episode_steps, self.config.episodes
        distance = tasks["distance"][:, START_CELL]
        oracle = torch.where(distance <= steps, 1.0 - cost * (distance - 1.0), -cost * steps)
        return {"random": episodes * self.random_walk_value(tasks), "oracle": episodes * oracle}

    def random_walk_value(self, tasks: TaskBatch) -> torch.Tensor:
        """Exact expected episode return of the uniform random policy from the start: [n].

        Finite-horizon dynamic programming: V_h(s) = mean_a [reached * 1 + (1 - reached) *
        (-step_cost + V_{h+1}(s'))] with V_{max_steps} = 0.
        """
        passages, goal = tasks["passages"], tasks["goal"]
        n, device = goal.shape[0], goal.device
        cells = torch.arange(self.cells, device=device)
        table = self.table.to(device)
        successor = torch.where(passages, table.clamp(min=0), cells.view(1, -1, 1))
        reached = successor == goal.view(-1, 1, 1)
        value = torch.zeros(n, self.cells, device=device)
        for _ in range(self.max_episode_steps):
            after = value.gather(1, successor.flatten(1)).view_as(successor)
            outcome = torch.where(reached, 1.0, -self.config.step_cost + after)
            value = outcome.mean(2)
        return value[:, START_CELL]

    def oracle_action(self, tasks: TaskBatch, state: EnvState) -> torch.Tensor:
        cell = state["cell"]
        rows = torch.arange(cell.shape[0], device=cell.device)
        neighbours = self.table.to(cell.device)[cell]
        ahead = tasks["distance"].gather(1, neighbours.clamp(min=0))
        ahead = ahead.masked_fill(~tasks["passages"][rows, cell], float("inf"))
        return ahead.argmin(1)

    # Rendering ---------------------------------------------------------------------------------
    def render(self, tasks: TaskBatch, state: EnvState, index: int = 0, mode: str = "ansi"):
        """Draw maze ``index`` of the batch: text (``ansi``) or an RGB image (``rgb_array``).

        ``ansi``: one line per wall-grid row, ``#`` wall, ``.`` free, ``G`` goal, ``A`` agent.
        ``rgb_array``: uint8 [8 G, 8 G, 3]; walls dark grey, free white, goal green, agent red.
        """
        require(
            mode in self.render_modes,
            f"render mode '{mode}' is not supported; valid modes: {', '.join(self.render_modes)}",
        )
        symbols = self._grid_symbols(tasks, state, index)
        if mode == "ansi":
            return "\n".join("".join(row) for row in symbols) + "\n"
        colours = {"#": (64, 64, 64), ".": (255, 255, 255), "G": (0, 170, 0), "A": (220, 0, 0)}
        image = np.array([[colours[s] for s in row] for row in symbols], dtype=np.uint8)
        return image.repeat(8, axis=0).repeat(8, axis=1)

    def _grid_symbols(self, tasks: TaskBatch, state: EnvState, index: int) -> list[list[str]]:
        walls = tasks["walls"][index].cpu()
        symbols = [["#" if wall else "." for wall in row] for row in walls.tolist()]
        size = self.config.size
        for cell, mark in ((int(tasks["goal"][index]), "G"), (int(state["cell"][index]), "A")):
            symbols[2 * (cell // size) + 1][2 * (cell % size) + 1] = mark
        return symbols
