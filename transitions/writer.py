"""Writing a transitions file without torch (preprocessing's side of the format, `schema.py`).

`open_writer` creates the file as a temporary sibling of its path, renamed into place when the
block ends well. The writer holds a fixed buffer of `chunk_rows` rows per array and appends it to
the file each time it fills, so memory is set by `chunk_rows`, not by the data; it accumulates the
observation statistics of the training rows as it flushes, and `write_header` records them with
what preprocessing says of the data (`Header`).

Layout: when the number of rows is known beforehand and nothing is compressed, every array is
one contiguous, uncompressed HDF5 dataset, so its bytes lie in the file as a plain C array that
training can memory-map (`transitions/mapped.py`, `train.storage: disk`) while h5py and every
other reader see an ordinary file. Otherwise the arrays are chunked (`MAX_CHUNK_ROWS`) and grow
as rows come, which compression and a row count unknown beforehand require.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from core.atomic import atomic_path
from transitions.schema import SCHEMA_VERSION, array_specs
from transitions.spaces import ActionLayout, ObservationLayout

MAX_CHUNK_ROWS = 65_536  # HDF5 chunk of the arrays (rows), whatever the write buffer
MAX_STATS_VALUES = 1 << 24  # values per slice the statistics merge at once (128 MB in float64)
OBS_STD_FLOOR = 1e-3  # constant features would divide by ~0 when observations are normalised


@dataclass
class RunningStats:
    """Chan et al.'s parallel mean/variance merge: exact, in one pass, chunk by chunk."""

    count: int = 0
    mean: np.ndarray | None = None
    m2: np.ndarray | None = None

    def update(self, x: np.ndarray) -> None:
        # Merged in slices of at most MAX_STATS_VALUES values: the float64 copy of a chunk of
        # wide image rows (84x84x4 bytes each) would otherwise take gigabytes. Narrow rows (Hopper's
        # 11 columns) stay one slice per chunk, the arithmetic as it always was.
        rows = max(1, MAX_STATS_VALUES // max(1, int(np.prod(x.shape[1:]))))
        for start in range(0, x.shape[0], rows):
            self._merge(x[start : start + rows])

    def _merge(self, x: np.ndarray) -> None:
        n = x.shape[0]
        if n == 0:
            return
        x64 = x.astype(np.float64)
        batch_mean = x64.mean(0)
        batch_m2 = ((x64 - batch_mean) ** 2).sum(0)
        if self.mean is None or self.m2 is None:
            self.count, self.mean, self.m2 = n, batch_mean, batch_m2
            return
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + batch_m2 + delta**2 * self.count * n / total
        self.count = total

    @property
    def std(self) -> np.ndarray:
        assert self.m2 is not None
        return np.sqrt(self.m2 / max(self.count, 1))


@dataclass(frozen=True)
class Header:
    """What preprocessing records about the data: the file's attributes but the schema version and
    the observation statistics, which the writer adds (`schema.py` lists them all)."""

    env_id: str
    dataset_ids: list[str]
    ref_min_score: float | None
    ref_max_score: float | None
    ref_score_source: str | None
    actions: ActionLayout  # recorded as action_low/high (Box) or num_actions/action_start
    observations: ObservationLayout  # recorded as observation_keys (a Dict's keys and widths)
    normalize_observations: bool
    reward_scale: float
    reward_shift: float
    return_to_go_discount: float
    validation_fraction: float
    split_seed: int
    num_episodes: int
    num_validation_episodes: int
    returns: np.ndarray  # the training episodes' returns


class RowCountError(ValueError):
    """A contiguous file received more or fewer rows than it was created for."""


class TransitionsWriter:
    """Fixed buffer of `chunk_rows` rows per array, appended to the file each time it fills.

    With `rows` (and no compression) the arrays are created contiguous at their final size and
    exactly that many rows must be added; without, they are chunked and grow."""

    def __init__(
        self,
        file: h5py.File,
        observations: ObservationLayout,
        actions: ActionLayout,
        chunk_rows: int,
        compression: str | None,
        rows: int | None = None,
    ) -> None:
        if rows is not None and compression is not None:
            raise ValueError(f"compression {compression!r} needs chunked arrays: pass rows=None")
        self.file, self.chunk_rows = file, chunk_rows
        self.rows, self.fill = 0, 0
        self.declared_rows = rows
        self.obs_stats = RunningStats()
        self.buffers: dict[str, np.ndarray] = {}
        for key, (shape, dtype) in array_specs(
            observations.obs_dim, actions, observations.dtype
        ).items():
            if rows is None:
                file.create_dataset(
                    key,
                    shape=(0, *shape),
                    maxshape=(None, *shape),
                    dtype=dtype,
                    chunks=(min(chunk_rows, MAX_CHUNK_ROWS), *shape),
                    compression=compression,
                )
            else:  # HDF5 allocates a contiguous dataset's bytes in one piece on the first write
                file.create_dataset(key, shape=(rows, *shape), dtype=dtype)
            self.buffers[key] = np.empty((chunk_rows, *shape), dtype=dtype)

    @property
    def contiguous(self) -> bool:
        return self.declared_rows is not None

    def add(self, arrays: dict[str, np.ndarray]) -> None:
        """Copy rows into the buffer, flushing as often as it fills (episodes may span chunks)."""
        n, done = arrays["rewards"].shape[0], 0
        while done < n:
            take = min(n - done, self.chunk_rows - self.fill)
            for key, value in arrays.items():
                self.buffers[key][self.fill : self.fill + take] = value[done : done + take]
            self.fill += take
            done += take
            if self.fill == self.chunk_rows:
                self.flush()

    def flush(self) -> None:
        if self.fill == 0:
            return
        start, end = self.rows, self.rows + self.fill
        if self.declared_rows is not None and end > self.declared_rows:
            raise RowCountError(
                f"more rows than the {self.declared_rows} the file was created for ({end} so far)"
            )
        observations = self.buffers["observations"][: self.fill]
        held_out = self.buffers["validation"][: self.fill]
        self.obs_stats.update(observations[~held_out] if held_out.any() else observations)
        for key, buffer in self.buffers.items():
            dataset = self.file[key]
            if not self.contiguous:
                dataset.resize(end, axis=0)
            dataset[start:end] = buffer[: self.fill]
        self.rows, self.fill = end, 0

    def write_header(self, header: Header) -> None:
        """The file's attributes; call after the last `flush`."""
        stats = self.obs_stats
        assert stats.mean is not None
        returns = header.returns
        self.file.attrs.update(
            {
                "schema_version": SCHEMA_VERSION,
                "env_id": header.env_id,
                "dataset_ids": json.dumps(header.dataset_ids),
                "ref_min_score": _score(header.ref_min_score),
                "ref_max_score": _score(header.ref_max_score),
                "ref_score_source": str(header.ref_score_source or "none"),
                "action_low": np.asarray(header.actions.low, dtype=np.float32),
                "action_high": np.asarray(header.actions.high, dtype=np.float32),
                "num_actions": header.actions.num_actions,
                "action_start": header.actions.start,
                "observation_keys": header.observations.to_json(),
                "obs_mean": stats.mean.astype(np.float32),
                "obs_std": np.maximum(stats.std, OBS_STD_FLOOR).astype(np.float32),
                "normalize_observations": header.normalize_observations,
                "reward_scale": header.reward_scale,
                "reward_shift": header.reward_shift,
                "return_to_go_discount": header.return_to_go_discount,
                "validation_fraction": header.validation_fraction,
                "split_seed": header.split_seed,
                "num_episodes": header.num_episodes,
                "num_validation_episodes": header.num_validation_episodes,
                "return_mean": float(returns.mean()),
                "return_std": float(returns.std()),
                "return_min": float(returns.min()),
                "return_max": float(returns.max()),
            }
        )


def _score(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _create(tmp: Path) -> h5py.File:
    """A new HDF5 file at `tmp`, the empty placeholder `atomic_path` made, without truncating it:
    ext4 flushes a truncated-then-rewritten file synchronously on close (auto_da_alloc), which
    the stage would wait for (docs/performance.md); the kernel writes the data back in the
    background instead, as for any other file."""
    tmp.unlink()
    return h5py.File(tmp, "x")


@contextlib.contextmanager
def open_writer(
    output: Path,
    observations: ObservationLayout,
    actions: ActionLayout,
    chunk_rows: int,
    compression: str | None,
    rows: int | None = None,
) -> Iterator[TransitionsWriter]:
    """A writer of a new transitions file at `output`, which appears there, whole, only when the
    block ends without an error. With `rows`, the arrays are contiguous (see the module's
    docstring) and the block must add exactly that many rows (`RowCountError` otherwise)."""
    with atomic_path(output, suffix=".h5") as tmp, _create(tmp) as file:
        writer = TransitionsWriter(file, observations, actions, chunk_rows, compression, rows)
        yield writer
        writer.flush()
        if rows is not None and writer.rows != rows:
            raise RowCountError(f"{writer.rows} rows added to a file created for {rows}")
