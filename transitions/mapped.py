"""The rows of a transitions file read straight from its bytes, for files larger than memory
(`train.storage: disk`): the arrays are memory-mapped and each batch gathers only its rows.

An uncompressed transitions file keeps every array as one contiguous HDF5 dataset
(transitions/writer.py), that is a plain C array at a fixed offset of the file
(`dataset.id.get_offset()`), which numpy views without copying. The kernel's page cache keeps what
memory allows and reads the rest on demand; the process itself holds only the batches it
gathered. Mapping the HDF5 file, rather than writing a second copy of the arrays beside it (.npy
files), keeps one file per dataset: one DVC output, one thing to copy, and every other reader
(h5py, `load_transitions`) sees an ordinary HDF5 file.

Indices count the rows of one split in file order, exactly as `load_transitions` stacks them, so
index i names the same row in both: validation episodes are whole runs of rows, and an index is
mapped to its file row through the runs of the split (a binary search over them).
"""

from __future__ import annotations

import contextlib
import mmap
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from transitions.loader import READ_ROWS, check_action_indices
from transitions.metadata import Split, TransitionsFileError, TransitionsMeta, read_meta
from transitions.schema import ROW_ARRAYS

# What a batch reads: the row arrays, the episode of each row (the dataset's next action stays
# inside its episode), the validation flags (which rows belong to the split) and, for the windows
# of sequence models, the returns-to-go.
MAPPED_ARRAYS = (*ROW_ARRAYS, "episode_ids", "validation", "returns_to_go")


@dataclass(frozen=True)
class MappedWindows:
    """Windows gathered from the file before the transforms (`MappedRows.gather_windows`)."""

    rows: np.ndarray  # (n, K, obs_dim + act_dim + 1) float32: observations, actions, returns-to-go
    mask: np.ndarray  # (n, K) bool: the step belongs to the window's episode
    timesteps: np.ndarray  # (n, K) int64: the step's index in its episode (0 on padding)
    steps_left: np.ndarray  # (n, K) int64: steps to the episode's end, the step's own included


class MappedRows:
    """The arrays of one transitions file, memory-mapped, and the rows of one split gathered from
    them as raw float32 packed rows (the columns of `load_transitions`' packed rows, before the
    file's transforms; discrete action indices become one float column, as there)."""

    def __init__(self, path: str | Path, split: Split = "train") -> None:
        self.path = Path(path)
        self.meta: TransitionsMeta = read_meta(self.path)
        places = self._places()
        with self.path.open("rb") as file:
            self._map = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        # A batch touches a few bytes at random places: the kernel's readahead around each fault
        # would read (and cache) 32 pages for every one used.
        self._map.madvise(mmap.MADV_RANDOM)
        self.arrays: dict[str, np.ndarray] = {
            key: np.frombuffer(self._map, dtype, int(np.prod(shape)), offset).reshape(shape)
            for key, (offset, shape, dtype) in places.items()
        }
        obs, act = (self.meta.obs_dim,), self.meta.actions.row_shape  # discrete: () (indices)
        # Per-row shapes of the packed columns, next actions last, as load_transitions packs them.
        self.shapes: list[tuple[int, ...]] = [obs, act, (), obs, (), act]
        self._file_starts, self._split_starts, self.size = self._runs(split)
        self._bounds: np.ndarray | None = None  # episode_bounds(), read on first use
        if self.size == 0:
            raise TransitionsFileError(f"{self.path}: the {split!r} split holds no transitions")

    def _places(self) -> dict[str, tuple[int, tuple[int, ...], np.dtype]]:
        """Offset, shape and dtype of each array in the file, checked to be mappable."""
        file_size = self.path.stat().st_size
        places = {}
        with h5py.File(self.path, "r") as f:
            if f.userblock_size:
                raise TransitionsFileError(f"{self.path}: has a user block; rerun preprocess")
            for key in MAPPED_ARRAYS:
                dataset = f[key]
                offset = dataset.id.get_offset()
                if dataset.chunks is not None or offset is None:
                    raise TransitionsFileError(
                        f"{self.path}: array '{key}' is chunked or compressed, so it cannot be "
                        "memory-mapped; train.storage: disk needs a file written with "
                        "preprocess.compression: none (rerun preprocess)"
                    )
                if not dataset.dtype.isnative:
                    raise TransitionsFileError(
                        f"{self.path}: array '{key}' is stored {dataset.dtype.str}, not in this "
                        "machine's byte order; rerun preprocess here"
                    )
                if offset + dataset.id.get_storage_size() > file_size:
                    raise TransitionsFileError(
                        f"{self.path}: array '{key}' ends past the end of the file (truncated)"
                    )
                places[key] = (offset, dataset.shape, dataset.dtype)
        return places

    def _runs(self, split: Split) -> tuple[np.ndarray, np.ndarray, int]:
        """The split as runs of consecutive file rows: each run's first file row and first split
        index, and the split's size. Read READ_ROWS flags at a time: memory stays bounded."""
        rows = self.meta.size
        if split == "all" or (split == "train" and self.meta.num_validation_episodes == 0):
            return np.zeros(1, np.int64), np.zeros(1, np.int64), rows
        if split not in ("train", "validation"):
            raise ValueError(f"split {split!r}: expected 'all', 'train' or 'validation'")
        flags = self.arrays["validation"]
        edges = [np.zeros(1, np.int64)]
        for start in range(0, rows, READ_ROWS):
            block = flags[max(start - 1, 0) : start + READ_ROWS]  # one row of overlap
            changes = np.flatnonzero(block[1:] != block[:-1]) + 1 + max(start - 1, 0)
            edges.append(changes.astype(np.int64))
        starts = np.unique(np.concatenate(edges))
        lengths = np.diff(np.append(starts, rows))
        wanted = flags[starts] == (split == "validation")
        file_starts, lengths = starts[wanted], lengths[wanted]
        split_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        return file_starts, split_starts, int(lengths.sum())

    def file_rows(self, indices: np.ndarray) -> np.ndarray:
        """The file row of each split index."""
        run = np.searchsorted(self._split_starts, indices, side="right") - 1
        return self._file_starts[run] + (indices - self._split_starts[run])

    def gather(self, indices: np.ndarray) -> np.ndarray:
        """Rows `indices` of the split as a float32 (len(indices), width) array: observations,
        actions, rewards, next observations, terminals (0/1) and the dataset's next action (the
        action of the next row where it continues the episode, else the row's own)."""
        rows = self.file_rows(np.asarray(indices, dtype=np.int64))
        a = self.arrays
        following = np.minimum(rows + 1, self.meta.size - 1)
        following = np.where(a["episode_ids"][following] == a["episode_ids"][rows], following, rows)
        columns = (
            a["observations"][rows],
            a["actions"][rows],
            a["rewards"][rows],
            a["next_observations"][rows],
            a["terminals"][rows],
            a["actions"][following],
        )
        check_action_indices(self.path, columns[1], self.meta)
        out = np.empty((len(rows), sum(s[0] if s else 1 for s in self.shapes)), np.float32)
        column = 0
        for values in columns:
            width = values.shape[1] if values.ndim == 2 else 1
            out[:, column : column + width] = values.reshape(len(rows), width)
            column += width
        if not np.isfinite(out).all():
            bad = rows[~np.isfinite(out).all(axis=1)]
            raise TransitionsFileError(
                f"{self.path}: rows {bad[:5].tolist()} hold NaN or inf values; rerun preprocess"
            )
        return out

    def episode_bounds(self) -> np.ndarray:
        """The first file row of every episode, and the file's row count last ((E + 1,), int64):
        read once, READ_ROWS episode ids at a time, so memory holds one entry per episode."""
        if self._bounds is None:
            ids, rows = self.arrays["episode_ids"], self.meta.size
            firsts = [np.zeros(1, np.int64)]
            for start in range(0, rows, READ_ROWS):
                block = ids[max(start - 1, 0) : start + READ_ROWS]  # one row of overlap
                changes = np.flatnonzero(block[1:] != block[:-1]) + 1 + max(start - 1, 0)
                firsts.append(changes.astype(np.int64))
            self._bounds = np.append(np.unique(np.concatenate(firsts)), rows)
        return self._bounds

    def gather_windows(self, ends: np.ndarray, context: int) -> MappedWindows:
        """The windows of `context` split rows ending at split indices `ends` (n,): the raw
        observations, actions and returns-to-go of each step ((n, K, width) float32, as packed
        in `WindowBuffer`), whether the step belongs to the end row's episode (else padding,
        whose values are any row's), its index in the episode and the steps left to the
        episode's end (0 on padding)."""
        steps = np.asarray(ends, dtype=np.int64)[:, None] + np.arange(1 - context, 1)
        rows = self.file_rows(np.maximum(steps, 0))
        bounds = self.episode_bounds()
        episode = np.searchsorted(bounds, rows, side="right") - 1
        # Whole episodes belong to one split, so a step is the end row's episode exactly where
        # its file row is: file rows and split indices then differ by the same offset.
        mask = (steps >= 0) & (episode == episode[:, -1:])
        first, after = bounds[episode], bounds[episode + 1]
        a = self.arrays
        out = np.empty((*rows.shape, self.meta.obs_dim + self.meta.act_dim + 1), np.float32)
        out[..., : self.meta.obs_dim] = a["observations"][rows]
        out[..., self.meta.obs_dim : -1] = a["actions"][rows].reshape(*rows.shape, -1)
        out[..., -1] = a["returns_to_go"][rows]
        if not np.isfinite(out[mask]).all():
            bad = np.unique(rows[mask][~np.isfinite(out[mask]).all(axis=-1)])
            raise TransitionsFileError(
                f"{self.path}: rows {bad[:5].tolist()} hold NaN or inf values; rerun preprocess"
            )
        return MappedWindows(
            out, mask, np.where(mask, rows - first, 0), np.where(mask, after - rows, 0)
        )

    def close(self) -> None:
        """Unmap the file; arrays gathered before stay valid (they are copies). A view of the
        mapped arrays still held elsewhere keeps the mapping until it goes."""
        self.arrays = {}
        with contextlib.suppress(BufferError):
            self._map.close()
