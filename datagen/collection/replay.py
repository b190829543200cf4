"""Replay datasets (D4RL's medium-replay and full-replay) from the behaviour run's replay buffer.

The buffer (models/behavior/replay.h5) holds every transition of the behaviour training in order,
Box actions in [-1, 1] units of the action space (datasets store actions in the env's own bounds,
so they are mapped back here) and Discrete ones as the env's int64 actions (kept as they are); a
Dict observation as a group of per-key arrays. Episodes are split at terminals and timeouts; an episode cut by the
prefix's end is a truncation, never a terminal.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from core.errors import PipelineError
from datagen.collection.rollouts import Episode, row
from transitions.spaces import ActionLayout


class ReplayError(PipelineError, ValueError):
    """The replay buffer is missing or shorter than the requested prefix."""


def replay_size(path: Path) -> int:
    try:
        with h5py.File(path, "r") as f:
            return int(f["rewards"].shape[0])
    except FileNotFoundError:
        raise ReplayError(f"{path}: not found (run the behavior stage or dvc pull)") from None


def _read(item: Any, rows: slice) -> Any:
    """Rows of an array, or of each array of a group (a Dict observation)."""
    if isinstance(item, h5py.Group):
        return {key: item[key][rows] for key in item}
    return item[rows]


def replay_episodes(
    path: Path, steps: int, action: ActionLayout, chunk: int = 100_000
) -> Iterator[Episode]:
    """The first `steps` transitions of the buffer as episodes, read `chunk` rows at a time."""
    size = replay_size(path)
    if not 0 < steps <= size:
        raise ReplayError(f"{path}: asked for the first {steps} steps of a {size}-step buffer")
    low, high = np.asarray(action.low, np.float32), np.asarray(action.high, np.float32)
    with h5py.File(path, "r") as f:
        episode = Episode(seed=-1)  # the buffer does not record reset seeds; see docs/datasets.md
        for start in range(0, steps, chunk):
            rows = slice(start, min(start + chunk, steps))
            obs = _read(f["observations"], rows)
            next_obs = _read(f["next_observations"], rows)
            stored = f["actions"][rows]
            if action.discrete:
                actions = stored.astype(np.int64)
            else:
                actions = low + (stored + 1.0) * 0.5 * (high - low)
            rewards = f["rewards"][rows].reshape(-1)
            terminals = f["terminals"][rows].reshape(-1)
            timeouts = f["timeouts"][rows].reshape(-1)
            for i in range(len(rewards)):
                if not episode.observations:
                    episode.observations.append(row(obs, i))
                episode.actions.append(actions[i].astype(actions.dtype))
                episode.rewards.append(float(rewards[i]))
                episode.terminations.append(bool(terminals[i]))
                last = start + i == steps - 1
                episode.truncations.append(not terminals[i] and (bool(timeouts[i]) or last))
                episode.observations.append(row(next_obs, i))
                if terminals[i] or timeouts[i] or last:
                    yield episode
                    episode = Episode(seed=-1)
