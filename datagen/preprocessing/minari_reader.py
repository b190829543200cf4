"""Read the episodes of a Minari HDF5 file one at a time, checked, with bounded memory.

Reading is bound by HDF5's per-object overhead (Minari stores one group of five datasets per
episode), so this goes through h5py's low-level API and keeps HDF5's metadata cache small.

The dataset's spaces (`transitions.spaces`) say how to read it: a Dict observation is a group
`observations/<key>` of one (T + 1, width) array per key, of which the declared keys are read and
concatenated in order; Discrete actions are integer (T,) arrays, returned as indices (the action
minus the space's `start`), checked to lie in 0..n-1. Without layouts, both are read as Boxes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from core.errors import PipelineError
from datagen.preprocessing.hdf5_direct import DirectReader, RawEpisode
from datagen.preprocessing.hdf5_direct import available as direct_available
from transitions.spaces import ActionLayout, ObservationLayout


class PreprocessError(PipelineError, ValueError):
    """A source dataset is missing, unreadable, inconsistent or holds non-finite values."""


@dataclass
class EpisodeSlice:
    """Steps [start, start + len(actions)) of one episode, with the observation after the last."""

    observations: np.ndarray  # n + 1 rows, float32; a Dict's keys concatenated
    actions: np.ndarray  # float32 (n, k), or int64 (n,) indices of Discrete actions
    start: int


@dataclass
class Episode:
    index: int  # position in its source file
    rewards: np.ndarray  # float64, whole episode: returns and returns-to-go need all of it
    terminations: np.ndarray
    truncations: np.ndarray
    slices: Iterator[EpisodeSlice]


def _open(main_file: Path, file: h5py.File, name: str, key: str) -> h5py.h5d.DatasetID:
    """HDF5's low-level open: reading episodes is bound by per-object overhead, and h5py's
    high-level Group/Dataset wrappers cost more per object than the data itself here."""
    try:
        return h5py.h5d.open(file.id, f"{name}/{key}".encode())
    except KeyError:
        raise PreprocessError(f"{main_file}: {name}/{key} is missing") from None


def _read(
    main_file: Path, name: str, dataset: h5py.h5d.DatasetID, start: int, stop: int, dtype: Any
) -> np.ndarray:
    # `name` is "episode_<i>/<key>", so an error names the dataset.
    """Rows [start, stop) converted by HDF5 itself to `dtype` (None: the file's own type)."""
    shape = (stop - start, *dataset.shape[1:])
    out = np.empty(shape, dtype=dataset.dtype if dtype is None else dtype)
    try:
        if start == 0 and stop == dataset.shape[0]:
            dataset.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
        elif shape[0] > 0:
            file_space = dataset.get_space()
            file_space.select_hyperslab((start, *(0 for _ in shape[1:])), shape)
            dataset.read(h5py.h5s.create_simple(shape), file_space, out)
    except (OSError, TypeError, ValueError) as error:
        raise PreprocessError(f"{main_file}: {name} is unreadable ({error})") from None
    return out


def check_finite(main_file: Path, name: str, key: str, values: np.ndarray) -> None:
    if not np.isfinite(values).all():
        raise PreprocessError(f"{main_file}: {name}/{key} holds NaN or inf values")


@contextlib.contextmanager
def _minari_file(main_file: Path) -> Iterator[h5py.File]:
    """A Minari data file open for reading; a missing or unreadable one raises PreprocessError."""
    try:
        with h5py.File(main_file, "r") as f:
            yield f
    except FileNotFoundError:
        raise PreprocessError(f"{main_file}: Minari data file not found") from None
    except OSError as error:
        raise PreprocessError(f"{main_file}: unreadable HDF5 file ({error})") from None


def count_episodes(main_file: Path) -> int:
    with _minari_file(main_file) as f:
        return sum(1 for key in f if key.startswith("episode_"))


def count_episodes_and_steps(main_file: Path) -> tuple[int, int]:
    """The file's episodes and their steps (rewards) in all, from the arrays' shapes alone: what
    the file holds, whatever its metadata's `total_steps` says."""
    with _minari_file(main_file) as f:
        names = [key for key in f if key.startswith("episode_")]
        steps = 0
        for name in names:
            rewards = f[name].get("rewards")
            if not isinstance(rewards, h5py.Dataset):
                raise PreprocessError(f"{main_file}: {name} has no 'rewards' array")
            steps += rewards.shape[0]
        return len(names), steps


def check_indices(main_file: Path, name: str, indices: np.ndarray, actions: ActionLayout) -> None:
    """Discrete action indices (action - start) must name one of the space's n actions."""
    bad = (indices < 0) | (indices >= actions.num_actions)
    if bad.any():
        value = int(indices[bad][0]) + actions.start
        raise PreprocessError(
            f"{main_file}: {name}/actions holds {value}, outside Discrete({actions.num_actions}, "
            f"start={actions.start})"
        )


def _action_rows(
    main_file: Path,
    name: str,
    dataset: h5py.h5d.DatasetID,
    start: int,
    end: int,
    actions: ActionLayout | None,
) -> np.ndarray:
    if actions is None or not actions.discrete:
        return _read(main_file, f"{name}/actions", dataset, start, end, np.float32)
    if dataset.dtype.kind not in "iu" or len(dataset.shape) != 1:
        raise PreprocessError(
            f"{main_file}: {name}/actions is {dataset.dtype} {dataset.shape}; Discrete actions "
            "are one integer a step"
        )
    indices = _read(main_file, f"{name}/actions", dataset, start, end, np.int64) - actions.start
    check_indices(main_file, name, indices, actions)
    return indices


def _observation_rows(
    main_file: Path,
    name: str,
    datasets: dict[str, h5py.h5d.DatasetID],
    start: int,
    end: int,
    layout: ObservationLayout | None,
) -> np.ndarray:
    """Rows [start, end) of the observations: a Box's array, or a Dict's key arrays concatenated;
    an image's (n, H, W, C) uint8 pixels as flat (n, H * W * C) rows, still uint8."""
    dtype = np.float32 if layout is None else layout.dtype
    parts = [
        _read(main_file, f"{name}/{path}", dataset, start, end, dtype)
        for path, dataset in datasets.items()
    ]
    if layout is not None and layout.image:
        return parts[0].reshape(len(parts[0]), layout.obs_dim)
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def _slices(
    main_file: Path,
    name: str,
    observations: dict[str, h5py.h5d.DatasetID],
    actions: h5py.h5d.DatasetID,
    steps: int,
    slice_rows: int,
    action_layout: ActionLayout | None,
    observation_layout: ObservationLayout | None,
) -> Iterator[EpisodeSlice]:
    for start in range(0, steps, slice_rows):
        end = min(start + slice_rows, steps)
        piece = EpisodeSlice(
            observations=_observation_rows(
                main_file, name, observations, start, end + 1, observation_layout
            ),
            actions=_action_rows(main_file, name, actions, start, end, action_layout),
            start=start,
        )
        check_finite(main_file, name, "observations", piece.observations)
        check_finite(main_file, name, "actions", piece.actions)
        yield piece


METADATA_CACHE_BYTES = 4 << 20


def _cap_metadata_cache(file: h5py.File) -> None:
    """HDF5 grows its metadata cache to 32 MB of entries (hundreds of MB of RSS: docs/performance.md)
    while we visit thousands of episode groups once each; nothing is revisited, so a small cache
    costs no speed."""
    config = file.id.get_mdc_config()
    config.set_initial_size = True
    config.initial_size = config.min_size = METADATA_CACHE_BYTES // 4
    config.max_size = METADATA_CACHE_BYTES
    file.id.set_mdc_config(config)


def _open_observations(
    main_file: Path, f: h5py.File, name: str, layout: ObservationLayout | None
) -> dict[str, h5py.h5d.DatasetID]:
    """The observations array of a Box, or a Dict's declared key arrays in order (widths checked),
    by their path in the episode."""
    paths = [f"observations/{key}" for key in layout.key_names] if layout else []
    datasets: dict[str, h5py.h5d.DatasetID] = {}
    for (_, width), path in zip(layout.keys if layout else (), paths, strict=True):
        dataset = _open(main_file, f, name, path)
        rows = next(iter(datasets.values())).shape[0] if datasets else dataset.shape[0]
        if dataset.shape != (rows, *_row_shape(layout, width)):
            raise PreprocessError(
                f"{main_file}: {name}/{path} is {dataset.shape}, expected "
                f"{(rows, *_row_shape(layout, width))} (T + 1 observations of the declared shape)"
            )
        datasets[path] = dataset
    if not datasets:  # a Box: one array
        dataset = _open(main_file, f, name, "observations")
        if layout is not None and layout.image and dataset.shape[1:] != layout.image:
            raise PreprocessError(
                f"{main_file}: {name}/observations is {dataset.shape}, expected images "
                f"(T + 1, {', '.join(map(str, layout.image))})"
            )
        datasets["observations"] = dataset
    return datasets


def _row_shape(layout: ObservationLayout | None, width: int) -> tuple[int, ...]:
    """One observation's shape in a Minari file: an image's (H, W, C), a vector's (width,)."""
    return layout.image if layout is not None and layout.image else (width,)


def _read_h5py(
    main_file: Path,
    f: h5py.File,
    index: int,
    slice_rows: int,
    observation_layout: ObservationLayout | None = None,
    action_layout: ActionLayout | None = None,
) -> Episode:
    """Episode `index` through h5py: any layout, any length, and the precise error if broken."""
    name = f"episode_{index}"
    observations = _open_observations(main_file, f, name, observation_layout)
    actions = _open(main_file, f, name, "actions")
    flags = {}
    for key in ("rewards", "terminations", "truncations"):
        dataset = _open(main_file, f, name, key)
        flags[key] = _read(main_file, f"{name}/{key}", dataset, 0, dataset.shape[0], None)
    rewards = flags["rewards"].astype(np.float64)
    steps = rewards.shape[0]
    first_observations = next(iter(observations.values()))
    _check_lengths(main_file, name, first_observations.shape[0], actions.shape[0], steps)
    if flags["terminations"].shape[0] != steps or flags["truncations"].shape[0] != steps:
        raise PreprocessError(f"{main_file}: {name} flags do not have {steps} steps")
    check_finite(main_file, name, "rewards", rewards)
    pieces = _slices(
        main_file, name, observations, actions, steps, slice_rows, action_layout, observation_layout
    )
    terminations = flags["terminations"].astype(bool)
    truncations = flags["truncations"].astype(bool)
    return Episode(index, rewards, terminations, truncations, pieces)


def _check_lengths(main_file: Path, name: str, observations: int, actions: int, steps: int) -> None:
    if not (observations == steps + 1 and actions == steps):
        raise PreprocessError(
            f"{main_file}: {name} has {observations} observations and "
            f"{actions} actions for {steps} rewards (expected T+1, T, T)"
        )


def _from_raw(
    main_file: Path, index: int, raw: RawEpisode, actions: ActionLayout | None
) -> Episode:
    """An episode the direct reader returned whole (shapes already checked there)."""
    name = f"episode_{index}"
    check_finite(main_file, name, "rewards", raw.rewards)
    check_finite(main_file, name, "observations", raw.observations)
    check_finite(main_file, name, "actions", raw.actions)
    indices = raw.actions
    if actions is not None and actions.discrete:
        indices = raw.actions - actions.start
        check_indices(main_file, name, indices, actions)
    piece = EpisodeSlice(observations=raw.observations, actions=indices, start=0)
    return Episode(index, raw.rewards, raw.terminations, raw.truncations, iter((piece,)))


class EpisodeReader:
    """An open Minari HDF5 file whose episodes are read in id order, checked as they are read.

    Episodes of at most `slice_rows` steps are read whole through HDF5's C API
    (`hdf5_direct.py`, unless `direct` is False or the observations are a Dict); longer ones,
    and any episode that reader declines, go through h5py. Both give the same arrays; h5py gives
    the precise error. `observations` and `actions` are the dataset's spaces (None: Boxes).
    """

    def __init__(
        self,
        main_file: Path,
        slice_rows: int,
        direct: bool = True,
        count: int | None = None,
        observations: ObservationLayout | None = None,
        actions: ActionLayout | None = None,
    ) -> None:
        self.main_file, self.slice_rows = main_file, slice_rows
        self.observations, self.actions = observations, actions
        self.count = count_episodes(main_file) if count is None else count
        try:
            self.file = h5py.File(main_file, "r")
        except OSError as error:
            raise PreprocessError(f"{main_file}: unreadable HDF5 file ({error})") from None
        _cap_metadata_cache(self.file)
        # The direct reader lands float32 vectors in place: Dicts and images take h5py's path.
        plain = observations is None or not (observations.keys or observations.image)
        direct = direct and direct_available() and plain
        discrete = actions is not None and actions.discrete
        self.direct = DirectReader(self.file, slice_rows, discrete) if direct else None

    def __enter__(self) -> EpisodeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.direct = None
        self.file.close()

    def read_h5py(self, index: int) -> Episode:
        """Episode `index` through h5py alone (any length; slices of at most `slice_rows`)."""
        return _read_h5py(
            self.main_file, self.file, index, self.slice_rows, self.observations, self.actions
        )

    def episodes(self, start: int = 0, stop: int | None = None) -> Iterator[Episode]:
        """Episodes [start, stop) (default: to the end). Observations and actions come in
        `Episode.slices` of at most `slice_rows` steps: consume them before the next episode."""
        for index in range(start, self.count if stop is None else min(stop, self.count)):
            raw = self.direct.read(index) if self.direct is not None else None
            if raw is None:
                yield self.read_h5py(index)
            else:
                yield _from_raw(self.main_file, index, raw, self.actions)


def read_episodes(main_file: Path, slice_rows: int, direct: bool = True) -> Iterator[Episode]:
    """Every episode of a Minari HDF5 file in id order (see `EpisodeReader`)."""
    with EpisodeReader(main_file, slice_rows, direct) as reader:
        yield from reader.episodes()
