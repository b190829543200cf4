"""The blocks of rows built across forked worker processes (`ParallelRows`), the same rows in the
same order as in one process (`blocks.build_inline`).

Job j (of `blocks.jobs_for`) is built by worker j % workers into blocks in shared memory
(`SLOTS_PER_WORKER` slots each), and the main process takes the blocks job by job, in episode
order, so the rows it writes are the same, in the same order, whatever the number of workers.
Memory stays bounded: a worker fills a slot only after the main process has handed it back.
Workers are forked (they need only h5py and numpy, the slots are an anonymous shared mapping made
before the fork, and they are forked before the output file is opened); they open their own input
files and touch nothing else of the parent's. Without fork (not Linux or macOS), the work stays
in-process.
"""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

import numpy as np

from datagen.preprocessing.blocks import BlockBuilder, Piece, RowsJob, block_shapes
from datagen.preprocessing.minari_reader import EpisodeReader
from transitions.spaces import ActionLayout, ObservationLayout

SLOTS_PER_WORKER = 4  # slack for scheduling jitter: 2 was measurably slower on 2 cores


class _Slots:
    """`count` blocks of `capacity` rows (`block_arrays`) in one anonymous shared mapping."""

    def __init__(
        self, count: int, capacity: int, observations: ObservationLayout, actions: ActionLayout
    ) -> None:
        self.capacity = capacity
        layout, size = [], 0
        for key, (full, dtype) in block_shapes(capacity, observations, actions).items():
            layout.append((key, size, full, np.dtype(dtype)))
            size += -(-int(np.prod(full)) * np.dtype(dtype).itemsize // 64) * 64  # aligned
        # MAP_SHARED | MAP_ANONYMOUS: the forked workers write what the main process reads.
        self.memory = mmap.mmap(-1, count * size)
        self.views = [
            {
                key: np.frombuffer(
                    self.memory, dtype, int(np.prod(full)), slot * size + offset
                ).reshape(full)
                for key, offset, full, dtype in layout
            }
            for slot in range(count)
        ]


class _Stopped(Exception):
    pass


def _worker(
    conn: Connection,
    jobs: list[RowsJob],
    slots: _Slots,
    own: list[int],
    held_out: np.ndarray,
    discount: float,
    observations: ObservationLayout,
    actions: ActionLayout,
) -> None:
    """Build the blocks of `jobs` in the slots `own`; each job's last block is marked done.
    Messages: ("block", slot, rows, returns, done) or ("error", exception, traceback text)."""
    readers: dict[Path, EpisodeReader] = {}
    free = list(own)
    filling = -1  # the slot being filled

    def take() -> dict[str, np.ndarray]:
        nonlocal filling
        slot = free.pop() if free else conn.recv()
        if slot is None:  # the main process stopped early (an error elsewhere)
            raise _Stopped
        filling = int(slot)
        return slots.views[filling]

    def give(block: dict[str, np.ndarray], rows: int, returns: list[float], done: bool) -> None:
        conn.send(("block", filling, rows, returns, done))

    builder = BlockBuilder(held_out, discount, observations, actions, slots.capacity, take, give)
    try:
        for job in jobs:
            if job.main_file not in readers:
                readers[job.main_file] = EpisodeReader(
                    job.main_file, slots.capacity, True, job.episodes_in_file, observations, actions
                )
            builder.run(readers[job.main_file], job)
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
    """The blocks of `jobs`, built by `workers` forked processes (see the module docstring).

    Enter before opening the output file (the workers are forked then). Iterating gives one piece
    per block, in job order; its columns are views of shared memory, valid until the next piece is
    asked for.
    """

    def __init__(
        self,
        jobs: list[RowsJob],
        held_out: np.ndarray,
        discount: float,
        observations: ObservationLayout,
        actions: ActionLayout,
        workers: int,
        block_rows: int,
    ) -> None:
        self.jobs, self.workers = jobs, workers
        self.args = (held_out, discount, observations, actions)
        self.slots = _Slots(workers * SLOTS_PER_WORKER, block_rows, observations, actions)
        self.processes: list[BaseProcess] = []
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
                block = self.slots.views[slot]
                yield Piece({key: array[:rows] for key, array in block.items()}, returns)
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
