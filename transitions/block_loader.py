"""Transitions files larger than memory: blocks of rows read onto the device by a background thread.

The train stage trains on a file that does not fit with `train.storage: disk`
(offline_rl/disk_buffer.py), which samples uniformly over all rows as loading does; this loader
samples differently, for code that wants epochs or reads a compressed file. `BlockLoader` reads
contiguous blocks of `block_rows` file rows, applies the same transforms, and moves each to the
device in a background thread while batches are drawn from the block already there. One epoch visits the blocks in a shuffled order and every row of the split
exactly once, in a shuffled order within its block; so shuffling is within blocks, not global: make
blocks span many episodes. At most `prefetch + 2` blocks exist at once (the one being sampled, those
queued, the one being read), so memory is set by `block_rows`, not by the file.

h5py serialises its calls under one lock and holds the GIL while copying, so reading overlaps with
device work (kernels run asynchronously) rather than with Python on the training thread.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import weakref
from collections.abc import Generator, Iterator
from pathlib import Path

import h5py
import numpy as np
import torch

from transitions.loader import (
    Batch,
    Transitions,
    apply_transforms,
    check_action_indices,
    read_rows,
)
from transitions.metadata import Split, read_meta
from transitions.schema import ROW_ARRAYS


class BlockLoader:
    """Epochs of batches over one split of a transitions file, holding a few blocks at a time."""

    def __init__(
        self,
        path: str | Path,
        batch_size: int,
        device: torch.device | str = "cpu",
        block_rows: int = 1_000_000,
        split: Split = "train",
        seed: int = 0,
        prefetch: int = 1,
    ) -> None:
        if batch_size < 1 or block_rows < 1 or prefetch < 1:
            raise ValueError(
                f"batch_size {batch_size}, block_rows {block_rows} and prefetch {prefetch} "
                "must all be at least 1"
            )
        self.path = Path(path)
        self.meta = read_meta(self.path)
        self.batch_size, self.block_rows, self.prefetch = batch_size, block_rows, prefetch
        self.device, self.split = torch.device(device), split
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.live_blocks = 0  # blocks currently alive (read, queued or being sampled)
        self.peak_live_blocks = 0
        self._lock = threading.Lock()

    def __iter__(self) -> Generator[Batch, None, None]:
        """Batches forever, epoch after epoch."""
        while True:
            yield from self.epoch()

    def epoch(self) -> Iterator[Batch]:
        """Every row of the split exactly once; the last batch of each block may be smaller."""
        starts = self.rng.permutation(np.arange(0, self.meta.size, self.block_rows))
        blocks: queue.Queue[Transitions | BaseException | None] = queue.Queue(self.prefetch)
        stop = threading.Event()
        reader = threading.Thread(
            target=self._read_blocks, args=(starts, blocks, stop), daemon=True, name="blocks"
        )
        reader.start()
        try:
            while (block := blocks.get()) is not None:
                if isinstance(block, BaseException):
                    raise block
                order = torch.randperm(len(block), generator=self.generator, device=self.device)
                for first in range(0, len(block), self.batch_size):
                    idx = order[first : first + self.batch_size]
                    yield Batch(
                        observations=block.observations[idx],
                        actions=block.actions[idx],
                        rewards=block.rewards[idx],
                        next_observations=block.next_observations[idx],
                        dones=block.dones[idx],
                    )
                del block
        finally:
            stop.set()
            while reader.is_alive():  # unblock a reader waiting on a full queue
                with contextlib.suppress(queue.Empty):
                    blocks.get(timeout=0.05)
            reader.join()

    def _read_blocks(
        self,
        starts: np.ndarray,
        blocks: queue.Queue[Transitions | BaseException | None],
        stop: threading.Event,
    ) -> None:
        try:
            with h5py.File(self.path, "r") as f:
                for start in map(int, starts):
                    if stop.is_set():
                        return
                    block = self._read_block(f, start, min(start + self.block_rows, self.meta.size))
                    if block is not None:
                        self._put(blocks, block, stop)
            self._put(blocks, None, stop)
        except BaseException as error:  # surfaced on the training thread
            self._put(blocks, error, stop)

    def _read_block(self, f: h5py.File, start: int, end: int) -> Transitions | None:
        keep = None
        if self.split != "all":
            held_out = np.asarray(f["validation"][start:end], dtype=bool)
            keep = held_out if self.split == "validation" else ~held_out
            if not keep.any():
                return None
        pinned = self.device.type == "cuda"
        raw = {}
        for key in ROW_ARRAYS:
            host = read_rows(self.path, f, key, start, end, keep)
            if key == "actions":
                check_action_indices(self.path, host, self.meta)
            tensor = torch.from_numpy(host)
            raw[key] = (tensor.pin_memory() if pinned else tensor).to(
                self.device, non_blocking=pinned
            )
        block = apply_transforms(raw, self.meta)
        with self._lock:
            self.live_blocks += 1
            self.peak_live_blocks = max(self.peak_live_blocks, self.live_blocks)
        weakref.finalize(block.observations, self._release)
        return block

    def _release(self) -> None:
        with self._lock:
            self.live_blocks -= 1

    @staticmethod
    def _put(
        blocks: queue.Queue[Transitions | BaseException | None],
        item: Transitions | BaseException | None,
        stop: threading.Event,
    ) -> None:
        while not stop.is_set():
            try:
                blocks.put(item, timeout=0.05)
                return
            except queue.Full:
                continue
