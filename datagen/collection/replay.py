"""Replay datasets (D4RL's medium-replay and full-replay) from the behaviour run's replay buffer.

The buffer (models/behavior/replay.h5) holds every transition of SAC's training in order, with
actions in [-1, 1] units of the action space; datasets store actions in the env's own bounds, so
they are mapped back here. Episodes are split at terminals and timeouts; an episode cut by the
prefix's end is a truncation, never a terminal.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from core.errors import PipelineError
from datagen.collection.rollouts import Episode


class ReplayError(PipelineError, ValueError):
    """The replay buffer is missing or shorter than the requested prefix."""


def replay_size(path: Path) -> int:
    try:
        with h5py.File(path, "r") as f:
            return int(f["rewards"].shape[0])
    except FileNotFoundError:
        raise ReplayError(f"{path}: not found (run the behavior stage or dvc pull)") from None


def replay_episodes(
    path: Path, steps: int, action_low: np.ndarray, action_high: np.ndarray, chunk: int = 100_000
) -> Iterator[Episode]:
    """The first `steps` transitions of the buffer as episodes, read `chunk` rows at a time."""
    size = replay_size(path)
    if not 0 < steps <= size:
        raise ReplayError(f"{path}: asked for the first {steps} steps of a {size}-step buffer")
    low, high = np.asarray(action_low, np.float32), np.asarray(action_high, np.float32)
    with h5py.File(path, "r") as f:
        episode = Episode(seed=-1)  # the buffer does not record reset seeds; see docs/datasets.md
        for start in range(0, steps, chunk):
            rows = slice(start, min(start + chunk, steps))
            obs, next_obs = f["observations"][rows], f["next_observations"][rows]
            actions = low + (f["actions"][rows] + 1.0) * 0.5 * (high - low)
            rewards = f["rewards"][rows].reshape(-1)
            terminals = f["terminals"][rows].reshape(-1)
            timeouts = f["timeouts"][rows].reshape(-1)
            for i in range(len(rewards)):
                if not episode.observations:
                    episode.observations.append(obs[i])
                episode.actions.append(actions[i].astype(np.float32))
                episode.rewards.append(float(rewards[i]))
                episode.terminations.append(bool(terminals[i]))
                last = start + i == steps - 1
                episode.truncations.append(not terminals[i] and (bool(timeouts[i]) or last))
                episode.observations.append(next_obs[i])
                if terminals[i] or timeouts[i] or last:
                    yield episode
                    episode = Episode(seed=-1)
