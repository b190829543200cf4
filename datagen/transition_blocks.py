"""Episodes -> rows of the transitions file, in one process or across worker processes.

`episode_rows` turns the episodes of one Minari file into the rows of every array of the
transitions file (`array_specs`), piece by piece; `datagen.preprocess` appends them to its writer.

With several workers (`parallel_rows`), the episodes are cut into consecutive groups of
`GROUP_EPISODES`; group g is converted by worker g % workers into blocks of at most `block_rows`
rows in shared memory (two slots per worker), and the main process takes the blocks group by group
in episode order, so the rows it writes are the same, in the same order, whatever the number of
workers. Memory stays bounded: each worker fills a slot only after the main process has handed it
back. Workers are forked (they need only h5py and numpy, and the shared slots are anonymous
mappings made before the fork); no HDF5 file is open in the parent while it forks, and the workers
never touch the parent's torch or HDF5 state. Where fork is unavailable the work stays in-process.

This module imports only numpy, h5py and the reader, so a worker starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import multiprocessing
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from datagen.minari_reader import EpisodeReader, PreprocessError

GROUP_EPISODES = 32  # episodes per unit of work: small enough to balance, large enough to batch
SLOTS_PER_WORKER = 2  # one being filled while the main process writes the other


def array_specs(obs_dim: int, act_dim: int) -> dict[str, tuple[tuple[int, ...], type]]:
    """Per-row shape and dtype of every array of the transitions file."""
    return {
        "observations": ((obs_dim,), np.float32),
        "actions": ((act_dim,), np.float32),
        "rewards": ((), np.float32),
        "next_observations": ((obs_dim,), np.float32),
        "terminals": ((), bool),
        "timeouts": ((), bool),
        "episode_ids": ((), np.int64),
        "returns_to_go": ((), np.float32),
        "validation": ((), bool),
    }


def discounted_returns_to_go(rewards: np.ndarray, discount: float) -> np.ndarray:
    """rtg[t] = sum_{k>=t} discount^(k-t) rewards[k], vectorised in blocks short enough that
    discount^-block stays far from float64 overflow (a step-by-step Python loop is ~100x slower)."""
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
    episodes that start in them, in order (none for a later slice of a long episode)."""

    columns: dict[str, np.ndarray]
    returns: list[float]


def episode_rows(
    reader: EpisodeReader,
    job: RowsJob,
    held_out: np.ndarray,
    discount: float,
    obs_dim: int,
    act_dim: int,
) -> Iterator[Piece]:
    """The rows of the episodes of `job`, at most `reader.slice_rows` per piece, in order;
    `held_out[i]` marks episode i of the output file as a validation episode."""
    episode_id = job.first_id
    for episode in reader.episodes(job.start, job.stop):
        rtg = discounted_returns_to_go(episode.rewards, discount)
        timeouts = episode.truncations & ~episode.terminations
        returns = [float(episode.rewards.sum())]
        validation = bool(held_out[episode_id])
        for piece in episode.slices:
            if piece.observations.shape[1:] != (obs_dim,) or piece.actions.shape[1:] != (act_dim,):
                raise PreprocessError(
                    f"{job.main_file}: episode_{episode.index} shapes "
                    f"{piece.observations.shape[1:]}, {piece.actions.shape[1:]} differ "
                    f"from the spaces ({obs_dim},), ({act_dim},)"
                )
            steps = slice(piece.start, piece.start + piece.actions.shape[0])
            n = piece.actions.shape[0]
            columns = {
                "observations": piece.observations[:-1],
                "actions": piece.actions,
                "rewards": episode.rewards[steps],
                "next_observations": piece.observations[1:],
                "terminals": episode.terminations[steps],
                "timeouts": timeouts[steps],
                "episode_ids": np.full(n, episode_id, dtype=np.int64),
                "returns_to_go": rtg[steps],
                "validation": np.full(n, validation),
            }
            yield Piece(columns, returns)
            returns = []
        if returns:  # an episode without steps still counts
            yield Piece({}, returns)
        episode_id += 1


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


class _Slots:
    """`count` blocks of `capacity` rows of every array, in one anonymous shared mapping."""

    def __init__(self, count: int, capacity: int, obs_dim: int, act_dim: int) -> None:
        self.capacity = capacity
        self.layout: list[tuple[str, int, tuple[int, ...], np.dtype[Any]]] = []
        offset = 0
        for key, (shape, dtype) in array_specs(obs_dim, act_dim).items():
            self.layout.append((key, offset, shape, np.dtype(dtype)))
            offset += capacity * int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            offset = -(-offset // 64) * 64  # each array cache-line aligned
        self.slot_bytes = offset
        self.memory = mmap.mmap(-1, count * offset)  # MAP_SHARED | MAP_ANONYMOUS: kept by fork

    def view(self, slot: int, rows: int | None = None) -> dict[str, np.ndarray]:
        n = self.capacity if rows is None else rows
        base = slot * self.slot_bytes
        return {
            key: np.frombuffer(
                self.memory, dtype, n * int(np.prod(shape, dtype=np.int64)), base + offset
            ).reshape(n, *shape)
            for key, offset, shape, dtype in self.layout
        }


class _Stopped(Exception):
    pass


def _worker(
    conn: Connection,
    jobs: list[RowsJob],
    slots: _Slots,
    own: list[int],
    held_out: np.ndarray,
    discount: float,
    obs_dim: int,
    act_dim: int,
) -> None:
    """Convert `jobs` into blocks in the slots `own`; each job ends with a message marked done.
    Messages: ("block", slot, rows, returns, done) or ("error", exception, traceback text)."""
    readers: dict[Path, EpisodeReader] = {}
    free = list(own)

    def next_slot() -> int:
        slot = free.pop() if free else conn.recv()
        if slot is None:  # the main process stopped early (an error elsewhere)
            raise _Stopped
        return int(slot)

    try:
        for job in jobs:
            if job.main_file not in readers:
                readers[job.main_file] = EpisodeReader(
                    job.main_file, slots.capacity, count=job.episodes_in_file
                )
            slot = next_slot()
            block, fill, returns = slots.view(slot), 0, list[float]()
            pieces = episode_rows(readers[job.main_file], job, held_out, discount, obs_dim, act_dim)
            for piece in pieces:
                n = len(piece.columns["rewards"]) if piece.columns else 0
                if fill + n > slots.capacity:
                    conn.send(("block", slot, fill, returns, False))
                    slot = next_slot()
                    block, fill, returns = slots.view(slot), 0, []
                for key, value in piece.columns.items():
                    block[key][fill : fill + n] = value
                fill += n
                returns += piece.returns
            conn.send(("block", slot, fill, returns, True))
        while conn.recv() is not None:  # slots handed back after our last block
            pass
    except _Stopped:
        pass
    except BaseException as error:
        try:
            conn.send(("error", error, traceback.format_exc()))
        except Exception:  # the message itself failed (unpicklable error): say so in words
            conn.send(("error", RuntimeError(repr(error)), traceback.format_exc()))
    finally:
        for reader in readers.values():
            reader.close()


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


class ParallelRows:
    """The pieces of `episode_rows` over `jobs`, converted by `workers` forked processes.

    Enter before opening the output file (the workers are forked then). Iterating gives one piece
    per block, in job order; its columns are views of shared memory, valid until the next piece is
    asked for.
    """

    def __init__(
        self,
        jobs: list[RowsJob],
        held_out: np.ndarray,
        discount: float,
        obs_dim: int,
        act_dim: int,
        workers: int,
        block_rows: int,
    ) -> None:
        self.jobs, self.workers = jobs, workers
        self.args = (held_out, discount, obs_dim, act_dim)
        self.slots = _Slots(workers * SLOTS_PER_WORKER, block_rows, obs_dim, act_dim)
        self.processes: list[Any] = []
        self.conns: list[Connection] = []

    def __enter__(self) -> ParallelRows:
        context = multiprocessing.get_context("fork")
        try:
            for w in range(self.workers):
                parent, child = context.Pipe()
                own = [w * SLOTS_PER_WORKER + k for k in range(SLOTS_PER_WORKER)]
                process = context.Process(
                    target=_worker,
                    args=(child, self.jobs[w :: self.workers], self.slots, own, *self.args),
                    name=f"preprocess-worker-{w}",
                    daemon=True,
                )
                process.start()
                child.close()
                self.processes.append(process)
                self.conns.append(parent)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __iter__(self) -> Iterator[Piece]:
        for g in range(len(self.jobs)):
            w, done = g % self.workers, False
            conn = self.conns[w]
            while not done:
                try:
                    message = conn.recv()
                except EOFError:
                    self.processes[w].join(5)
                    raise RuntimeError(
                        f"preprocess worker {w} died (exit code {self.processes[w].exitcode})"
                    ) from None
                if message[0] == "error":
                    raise message[1] from RuntimeError(f"in preprocess worker {w}:\n{message[2]}")
                _, slot, rows, returns, done = message
                yield Piece(self.slots.view(slot, rows), returns)
                conn.send(slot)

    def __exit__(self, *exc: object) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):  # a worker that died has closed its end
                conn.send(None)
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join()
        for conn in self.conns:
            conn.close()
        # The shared mapping is unmapped when the last view of it is gone.
