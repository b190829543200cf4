"""A scripted behaviour for the goal-reaching mazes (gymnasium-robotics' PointMaze), as D4RL made
its maze2d datasets: a planner over the maze's cells and a PD controller towards the next waypoint,
with Gaussian action noise.

There is nothing to learn: the behaviour stage's "training" with `behavior.learner: waypoint`
runs the controller with its noise falling linearly from `noise_start` to `noise_end` over
`behavior.steps`, so its replay buffer holds better and better behaviour (as a learner's does),
and each checkpoint is the controller at that step's noise. A checkpoint's evaluated return is
its noisy return, the way it acts when collecting: noise-free, every checkpoint would be the same.

A waypoint checkpoint and its batched policy live with the others in datagen/behavior/policies.py.
Observations are the env's Dict (`observation` = x, y, vx, vy; `desired_goal` = goal x, y), one
or a vector env's batch; actions are the env's own (a force in [-1, 1]^2).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from core.envs import make_env
from datagen.behavior.config import WaypointConfig
from transitions.spaces import SpaceError


class MazePlan:
    """For every goal cell, the next cell to head for from each open cell (a breadth-first search
    from the goal over the maze's open cells, neighbours in a fixed order)."""

    MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))

    def __init__(self, env_id: str) -> None:
        env = make_env(env_id)
        try:
            maze = getattr(env.unwrapped, "maze", None)
            if maze is None:
                raise SpaceError(
                    f"{env_id}: behavior.learner waypoint needs a maze environment "
                    "(gymnasium-robotics PointMaze), which this is not"
                )
            self.open = np.asarray(maze.maze_map, dtype=object) != 1  # 0, "g", "r", "c": open
            self.scaling = float(maze.maze_size_scaling)
            self.x_center, self.y_center = float(maze.x_map_center), float(maze.y_map_center)
        finally:
            env.close()
        self._next: dict[tuple[int, int], dict[tuple[int, int], tuple[int, int]]] = {}

    def cell(self, xy: np.ndarray) -> tuple[int, int]:
        """The (row, col) holding the point (x, y) (the maze's own convention: row 0 at the top)."""
        row = int(np.floor((self.y_center - xy[1]) / self.scaling))
        col = int(np.floor((xy[0] + self.x_center) / self.scaling))
        return row, col

    def center(self, cell: tuple[int, int]) -> np.ndarray:
        row, col = cell
        x = (col + 0.5) * self.scaling - self.x_center
        y = self.y_center - (row + 0.5) * self.scaling
        return np.array([x, y])

    def next_cell(self, here: tuple[int, int], goal: tuple[int, int]) -> tuple[int, int]:
        if goal not in self._next:
            self._next[goal] = self._search(goal)
        return self._next[goal].get(here, goal)  # off the open cells (a wall's edge): head home

    def _search(self, goal: tuple[int, int]) -> dict[tuple[int, int], tuple[int, int]]:
        rows, cols = self.open.shape
        towards: dict[tuple[int, int], tuple[int, int]] = {goal: goal}
        frontier = deque([goal])
        while frontier:
            cell = frontier.popleft()
            for dr, dc in self.MOVES:
                near = (cell[0] + dr, cell[1] + dc)
                inside = 0 <= near[0] < rows and 0 <= near[1] < cols
                if inside and self.open[near] and near not in towards:
                    towards[near] = cell
                    frontier.append(near)
        return towards


class WaypointController:
    """The noise-free PD controller: towards the next cell's centre, or the goal in its cell."""

    def __init__(self, env_id: str, config: WaypointConfig) -> None:
        self.plan = MazePlan(env_id)
        self.config = config

    def __call__(self, obs: Any) -> np.ndarray:
        state = np.atleast_2d(np.asarray(obs["observation"], dtype=np.float64))
        goals = np.atleast_2d(np.asarray(obs["desired_goal"], dtype=np.float64))
        targets = np.empty_like(goals)
        for i, (xy, goal) in enumerate(zip(state[:, :2], goals, strict=True)):
            goal_cell, here = self.plan.cell(goal), self.plan.cell(xy)
            nxt = self.plan.next_cell(here, goal_cell)
            targets[i] = goal if nxt == goal_cell else self.plan.center(nxt)
        force = self.config.p_gain * (targets - state[:, :2]) - self.config.d_gain * state[:, 2:4]
        return np.clip(force, -1.0, 1.0).astype(np.float32)


def noise_at(config: WaypointConfig, step: int, steps: int) -> float:
    """The action noise's scale after `step` of the behaviour run's `steps`."""
    fraction = min(1.0, step / max(steps, 1))
    return config.noise_start + fraction * (config.noise_end - config.noise_start)


def noisy_action(clean: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """The controller's action with Gaussian noise of scale `noise`, kept within [-1, 1]."""
    return np.clip(clean + noise * rng.standard_normal(clean.shape), -1.0, 1.0).astype(np.float32)
