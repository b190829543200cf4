"""Episodes -> rows of the transitions file, in blocks.

`BlockBuilder` writes the rows of every array of the transitions file (`array_specs`) for
consecutive episodes into blocks of at most `block_rows` rows; `preprocess.py` appends each block to
its writer, in order. Where the blocks end never changes the file. The episodes are cut into
consecutive jobs of `GROUP_EPISODES` (`jobs_for`), built in this process (`build_inline`) or by
forked workers (`workers.py`).

This module imports only numpy, h5py and the reader, not the heavier `preprocess.py`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datagen.preprocessing.hdf5_direct import RawEpisode
from datagen.preprocessing.minari_reader import (
    EpisodeReader,
    PreprocessError,
    check_finite,
    check_indices,
)
from transitions.schema import array_specs
from transitions.spaces import ActionLayout, ObservationLayout

GROUP_EPISODES = 128  # episodes per unit of work (~70k rows here): balances, yet few messages


def discounted_returns_to_go(rewards: np.ndarray, discount: float) -> np.ndarray:
    """rtg[t] = sum_{k>=t} discount^(k-t) rewards[k], vectorised in blocks short enough that
    discount^-block stays far from float64 overflow (a step-by-step Python loop is far slower)."""
    rewards = rewards.astype(np.float64)
    if discount == 1.0:
        return np.cumsum(rewards[::-1])[::-1].copy()
    block = max(1, min(len(rewards), int(200 / -math.log10(discount))))
    out = np.empty_like(rewards)
    weights = discount ** np.arange(block, dtype=np.float64)
    carry = 0.0  # rtg of the step just after the current block
    for end in range(len(rewards), 0, -block):
        start = max(0, end - block)
        w = weights[: end - start]
        tail = np.cumsum((rewards[start:end] * w)[::-1])[::-1] / w
        out[start:end] = tail + carry * discount ** np.arange(end - start, 0, -1)
        carry = out[start]
    return out


@dataclass(frozen=True)
class RowsJob:
    """Episodes [start, stop) of `main_file` (which holds `episodes_in_file`), the first of which
    is episode `first_id` of the output file."""

    main_file: Path
    start: int
    stop: int
    first_id: int
    episodes_in_file: int


@dataclass
class Piece:
    """Rows of the transitions file (`columns`: every array, or none) and the total rewards of the
    episodes that start in them, in order."""

    columns: dict[str, np.ndarray]
    returns: list[float]


def block_shapes(
    capacity: int, observations: ObservationLayout, actions: ActionLayout
) -> dict[str, tuple[tuple[int, ...], type]]:
    """Shape and dtype of every array of a block of `capacity` rows: `observations` has one row
    more (see BlockBuilder)."""
    return {
        key: ((capacity + (key == "observations"), *shape), dtype)
        for key, (shape, dtype) in array_specs(
            observations.obs_dim, actions, observations.dtype
        ).items()
    }


def block_arrays(
    capacity: int, observations: ObservationLayout, actions: ActionLayout
) -> dict[str, np.ndarray]:
    """Empty arrays for a block of `capacity` rows."""
    return {
        key: np.empty(shape, dtype=dtype)
        for key, (shape, dtype) in block_shapes(capacity, observations, actions).items()
    }


# Hands a block over: its arrays, its row count, the returns of the episodes started in it, and
# whether it ends a job.
Give = Callable[[dict[str, np.ndarray], int, list[float], bool], None]


class BlockBuilder:
    """Writes the rows of consecutive episodes into blocks of at most `capacity` rows.

    `take()` gives an empty block (arrays of `block_arrays`), `give` hands a filled one over. An
    episode that fits in a block is read by HDF5 straight into it: its T + 1 observations land in
    the `observations` rows [fill, fill + T] (the last row is overwritten by the next episode's
    first observation, which is why that array has one spare row), its actions in `actions`, and
    only next_observations are copied. Other episodes (longer than a block, or that the direct
    reader declines) go through h5py in slices and are copied. Block boundaries never change what
    is written: the main process appends blocks in order.
    """

    def __init__(
        self,
        held_out: np.ndarray,
        discount: float,
        observations: ObservationLayout,
        actions: ActionLayout,
        capacity: int,
        take: Callable[[], dict[str, np.ndarray]],
        give: Give,
    ) -> None:
        self.held_out, self.discount = held_out, discount
        self.observations, self.actions, self.capacity = observations, actions, capacity
        self.take, self.give = take, give
        self.fill, self.returns = 0, list[float]()
        self._block: dict[str, np.ndarray] | None = None  # taken when the first row needs it

    def run(self, reader: EpisodeReader, job: RowsJob) -> None:
        """Every episode of `job` (from `reader`), then the block handed over as the job's last."""
        self.reader, direct = reader, reader.direct
        for index in range(job.start, job.stop):
            episode_id = job.first_id + index - job.start
            raw = direct.read(index, self._room) if direct is not None else None
            if raw is None:
                self._copy(index, episode_id)
            else:
                self._place(index, episode_id, raw)
        self._hand_over(done=True)

    @property
    def block(self) -> dict[str, np.ndarray]:
        if self._block is None:
            self._block = self.take()
        return self._block

    def _hand_over(self, done: bool) -> None:
        self.give(self.block, self.fill, self.returns, done)
        self._block, self.fill, self.returns = None, 0, []

    def _room(self, steps: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Where the direct reader puts an episode of `steps` steps (None: longer than a block)."""
        if steps > self.capacity:
            return None
        if self.fill + steps > self.capacity:
            self._hand_over(done=False)
        block = self.block
        return block["observations"][self.fill :], block["actions"][self.fill :]

    def _place(self, index: int, episode_id: int, raw: RawEpisode) -> None:
        """The rest of an episode the direct reader put in the block (it read observations and
        actions only if their widths were the block's: others go to `_copy`, which names them)."""
        main_file, name = self.reader.main_file, f"episode_{index}"
        check_finite(main_file, name, "rewards", raw.rewards)
        check_finite(main_file, name, "observations", raw.observations)
        check_finite(main_file, name, "actions", raw.actions)
        if self.actions.discrete:  # read as stored, in place: make them indices
            raw.actions -= self.actions.start
            check_indices(main_file, name, raw.actions, self.actions)
        block, start = self.block, self.fill
        end = start + raw.rewards.shape[0]
        block["next_observations"][start:end] = raw.observations[1:]
        block["rewards"][start:end] = raw.rewards
        block["terminals"][start:end] = raw.terminations
        np.greater(raw.truncations, raw.terminations, out=block["timeouts"][start:end])
        block["episode_ids"][start:end] = episode_id
        block["returns_to_go"][start:end] = discounted_returns_to_go(raw.rewards, self.discount)
        block["validation"][start:end] = self.held_out[episode_id]
        self.returns.append(float(raw.rewards.sum()))
        self.fill = end

    def _copy(self, index: int, episode_id: int) -> None:
        """An episode read through h5py, slice by slice, copied into blocks."""
        episode = self.reader.read_h5py(index)
        rtg = discounted_returns_to_go(episode.rewards, self.discount)
        timeouts = episode.truncations & ~episode.terminations
        self.returns.append(float(episode.rewards.sum()))
        obs_shape, act_shape = (self.observations.obs_dim,), self.actions.row_shape
        for piece in episode.slices:
            if piece.observations.shape[1:] != obs_shape or piece.actions.shape[1:] != act_shape:
                raise PreprocessError(
                    f"{self.reader.main_file}: episode_{index} shapes "
                    f"{piece.observations.shape[1:]}, {piece.actions.shape[1:]} differ "
                    f"from the spaces {obs_shape}, {act_shape}"
                )
            n = piece.actions.shape[0]
            if self.fill + n > self.capacity:
                self._hand_over(done=False)
            steps = slice(piece.start, piece.start + n)
            block, rows = self.block, slice(self.fill, self.fill + n)
            block["observations"][rows] = piece.observations[:-1]
            block["actions"][rows] = piece.actions
            block["rewards"][rows] = episode.rewards[steps]
            block["next_observations"][rows] = piece.observations[1:]
            block["terminals"][rows] = episode.terminations[steps]
            block["timeouts"][rows] = timeouts[steps]
            block["episode_ids"][rows] = episode_id
            block["returns_to_go"][rows] = rtg[steps]
            block["validation"][rows] = self.held_out[episode_id]
            self.fill += n


def jobs_for(files: list[tuple[Path, int]], group: int | None = None) -> list[RowsJob]:
    """Consecutive groups of at most `group` (default `GROUP_EPISODES`) episodes over files given
    as (path, episodes)."""
    group = group or GROUP_EPISODES
    jobs, first_id = [], 0
    for main_file, count in files:
        for start in range(0, count, group):
            stop = min(start + group, count)
            jobs.append(RowsJob(main_file, start, stop, first_id + start, count))
        first_id += count
    return jobs


def build_inline(
    jobs: list[RowsJob],
    held_out: np.ndarray,
    discount: float,
    observations: ObservationLayout,
    actions: ActionLayout,
    capacity: int,
    give: Give,
) -> None:
    """Every job's blocks built in this process, one reused block."""
    block = block_arrays(capacity, observations, actions)
    builder = BlockBuilder(held_out, discount, observations, actions, capacity, lambda: block, give)
    readers: dict[Path, EpisodeReader] = {}
    try:
        for job in jobs:
            if job.main_file not in readers:
                readers[job.main_file] = EpisodeReader(
                    job.main_file, capacity, True, job.episodes_in_file, observations, actions
                )
            builder.run(readers[job.main_file], job)
    finally:
        for reader in readers.values():
            reader.close()
