"""The direct (HDF5 C API) episode reader gives exactly what the h5py reader gives, on every
storage layout, and leaves anything unusual to h5py, whose errors name the file and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from datagen.preprocessing import hdf5_direct
from datagen.preprocessing.hdf5_direct import DirectReader
from datagen.preprocessing.minari_reader import Episode, EpisodeReader, PreprocessError
from tests.datagen.synthetic import PATTERN, write_synthetic

pytestmark = pytest.mark.skipif(
    not hdf5_direct.available(), reason="HDF5's C API is not reachable through h5py here"
)

LENGTHS = (1, 5, 37, 300)


def write_episodes(
    path: Path,
    obs_dtype: Any = np.float32,
    obs_storage: dict[str, Any] | None = None,
    **storage: Any,
) -> Path:
    """A Minari-layout file (episode_<i> groups of five datasets), stored as `storage` says
    (h5py create_dataset keywords: chunks, compression, ...; observations as `obs_storage`)."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for i, steps in enumerate(LENGTHS):
            group = f.create_group(f"episode_{i}")
            arrays = {
                "observations": rng.normal(size=(steps + 1, 11)).astype(obs_dtype),
                "actions": rng.uniform(-1, 1, size=(steps, 3)).astype(np.float32),
                "rewards": rng.normal(size=steps),
                "terminations": np.arange(steps) == steps - 1,
                "truncations": np.zeros(steps, dtype=bool),
            }
            for key, value in arrays.items():
                kwargs = obs_storage if key == "observations" and obs_storage else storage
                group.create_dataset(key, data=value, **kwargs)
    return path


def episodes(path: Path, direct: bool, slice_rows: int = 1000) -> list[dict[str, np.ndarray]]:
    def arrays(episode: Episode) -> dict[str, np.ndarray]:
        pieces = list(episode.slices)
        return {
            "observations": np.concatenate(
                [p.observations[:-1] for p in pieces] + [pieces[-1].observations[-1:]]
            ),
            "actions": np.concatenate([p.actions for p in pieces]),
            "rewards": episode.rewards,
            "terminations": episode.terminations,
            "truncations": episode.truncations,
        }

    with EpisodeReader(path, slice_rows, direct=direct) as reader:
        return [arrays(episode) for episode in reader.episodes()]


def assert_same(path: Path, slice_rows: int = 1000, count: int = len(LENGTHS)) -> None:
    direct, plain = episodes(path, True, slice_rows), episodes(path, False, slice_rows)
    assert len(direct) == len(plain) == count
    for a, b in zip(direct, plain, strict=True):
        for key in a:
            assert a[key].dtype == b[key].dtype, key
            np.testing.assert_array_equal(a[key], b[key], key)


def read_directly(path: Path, index: int, max_steps: int = 1000) -> Any:
    with h5py.File(path, "r") as f:
        return DirectReader(f, max_steps).read(index)


@pytest.mark.parametrize(
    "storage",
    [
        {},  # contiguous
        {"chunks": True},  # h5py's guessed chunks, as Minari stores them
        {"obs_storage": {"chunks": (7, 4), "maxshape": (None, 11)}},  # partial edge chunks
        {"compression": "gzip", "shuffle": True},
        {"compression": "lzf"},
    ],
    ids=["contiguous", "auto-chunked", "small-chunks", "gzip", "lzf"],
)
def test_same_arrays_as_h5py(tmp_path: Path, storage: dict[str, Any]) -> None:
    path = write_episodes(tmp_path / "e.h5", **storage)
    assert_same(path)
    for index in range(len(LENGTHS)):
        assert read_directly(path, index) is not None, "the direct path was not taken"


def test_same_arrays_on_a_minari_file(tmp_path: Path) -> None:
    folder = write_synthetic(tmp_path)
    path = folder / "data" / "main_data.hdf5"
    with h5py.File(path, "r") as f:
        assert f["episode_5/observations"].chunks is not None  # Minari chunks its datasets
        assert read_directly(path, 5, 100_000) is not None
    assert_same(path, 100_000, count=len(PATTERN))


def test_conversions_are_those_of_h5py(tmp_path: Path) -> None:
    """float64 observations become float32 by HDF5's conversion in both paths."""
    path = write_episodes(tmp_path / "e.h5", obs_dtype=np.float64, chunks=True)
    assert read_directly(path, 0) is not None
    assert_same(path)


def test_long_episodes_are_left_to_h5py(tmp_path: Path) -> None:
    path = write_episodes(tmp_path / "e.h5", chunks=True)
    assert read_directly(path, 3, max_steps=299) is None
    assert read_directly(path, 2, max_steps=299) is not None
    assert_same(path, slice_rows=16)  # the 300-step episode comes in slices through h5py


def test_flags_not_stored_as_bool_are_left_to_h5py(tmp_path: Path) -> None:
    path = write_episodes(tmp_path / "e.h5")
    with h5py.File(path, "a") as f:
        flags = f["episode_1/terminations"][()]
        del f["episode_1/terminations"]
        f["episode_1/terminations"] = flags.astype(np.uint8) * 2
    assert read_directly(path, 1) is None
    assert_same(path)


def test_missing_dataset_names_file_and_key(tmp_path: Path) -> None:
    path = write_episodes(tmp_path / "e.h5")
    with h5py.File(path, "a") as f:
        del f["episode_2/actions"]
    assert read_directly(path, 2) is None
    with pytest.raises(PreprocessError, match=rf"{path}: episode_2/actions is missing"):
        episodes(path, direct=True)


@pytest.mark.parametrize(
    ("key", "shape"),
    [("actions", (36, 3)), ("observations", (37, 11)), ("observations", (38,))],
)
def test_wrong_shapes_name_file_and_episode(
    tmp_path: Path, key: str, shape: tuple[int, ...]
) -> None:
    path = write_episodes(tmp_path / "e.h5")
    with h5py.File(path, "a") as f:
        del f[f"episode_2/{key}"]
        f[f"episode_2/{key}"] = np.zeros(shape, dtype=np.float32)
    assert read_directly(path, 2) is None
    if len(shape) == 1:  # the row counts fit: the caller rejects the width (tests/datagen)
        arrays = episodes(path, direct=True)[2]
        assert arrays[key].shape == (38,)
        return
    with pytest.raises(PreprocessError, match=rf"{path}: episode_2 has .* \(expected T\+1, T, T\)"):
        episodes(path, direct=True)


def test_corrupt_compressed_data_names_file_and_key(tmp_path: Path) -> None:
    path = write_episodes(tmp_path / "e.h5", compression="gzip")
    with h5py.File(path, "r") as f:
        chunk = f["episode_3/actions"].id.get_chunk_info(0)
    with open(path, "r+b") as raw:  # garble the deflate stream of that chunk
        raw.seek(chunk.byte_offset + 2)
        raw.write(b"\xff" * (chunk.size - 4))
    assert read_directly(path, 3) is None
    with pytest.raises(PreprocessError, match=rf"{path}: episode_3/actions is unreadable"):
        episodes(path, direct=True)
