"""Reading across worker processes writes the same file as reading in-process, and a worker's
error reaches the caller naming the file and the key, with no worker left behind."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from datagen.preprocessing import blocks
from datagen.preprocessing.blocks import jobs_for
from datagen.preprocessing.config import PreprocessConfig
from datagen.preprocessing.minari_reader import PreprocessError
from datagen.preprocessing.preprocess import preprocess
from datagen.preprocessing.workers import can_fork
from tests.datagen.synthetic import write_synthetic

pytestmark = pytest.mark.skipif(not can_fork(), reason="worker processes need fork")

# 24 episodes: single steps, both kinds of end, and episodes longer than the chunks used below.
PATTERN = [(int(n), bool(n % 3)) for n in np.random.default_rng(1).integers(1, 260, size=22)]
PATTERN += [(1, True), (700, False)]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("datasets")
    first = write_synthetic(root, PATTERN, kind="first", seed=0)
    second = write_synthetic(root, PATTERN[::-1], kind="second", seed=1)
    return [("hopper/first-v0", first), ("hopper/second-v0", second)]


def contents(path: Path) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    with h5py.File(path, "r") as f:
        return {key: f[key][()] for key in f}, dict(f.attrs)


@pytest.mark.parametrize("chunk_rows", [50, 100_000])
def test_worker_count_changes_nothing_in_the_file(
    sources: list[tuple[str, Path]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    chunk_rows: int,
) -> None:
    monkeypatch.setattr(blocks, "GROUP_EPISODES", 5)  # many groups per file
    files, raw = [], []
    for workers in (1, 2, 3):
        out = tmp_path / f"{workers}.h5"
        config = PreprocessConfig(chunk_rows=chunk_rows, workers=workers, validation_fraction=0.25)
        summary = preprocess(sources, out, config, seed=3)
        files.append(contents(out))
        raw.append(out.read_bytes())
    assert raw[0] == raw[1] == raw[2]  # byte for byte; the arrays are compared below by name
    assert summary["episodes"] == 2 * len(PATTERN)
    (arrays, attrs), *others = files
    assert arrays["validation"].any() and not arrays["validation"].all()
    np.testing.assert_array_equal(np.unique(arrays["episode_ids"]), np.arange(2 * len(PATTERN)))
    for other_arrays, other_attrs in others:
        assert other_arrays.keys() == arrays.keys()
        for key, value in arrays.items():
            assert other_arrays[key].dtype == value.dtype, key
            np.testing.assert_array_equal(other_arrays[key], value, key)
        assert other_attrs.keys() == attrs.keys()
        for key, attr in attrs.items():
            np.testing.assert_array_equal(other_attrs[key], attr, key)
    assert not multiprocessing.active_children()


def test_jobs_cover_every_episode_once() -> None:
    jobs = jobs_for([(Path("a"), 11), (Path("b"), 0), (Path("c"), 4)], group=5)
    assert [(j.main_file.name, j.start, j.stop, j.first_id) for j in jobs] == [
        ("a", 0, 5, 0),
        ("a", 5, 10, 5),
        ("a", 10, 11, 10),
        ("c", 0, 4, 11),
    ]


def test_error_in_a_worker_names_file_and_key(
    sources: list[tuple[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blocks, "GROUP_EPISODES", 3)
    copy = tmp_path / "second-v0"
    shutil.copytree(sources[1][1], copy)
    main = copy / "data" / "main_data.hdf5"
    with h5py.File(main, "a") as f:
        del f["episode_19/actions"]
    out = tmp_path / "t.h5"
    config = PreprocessConfig(chunk_rows=64, workers=2)
    with pytest.raises(PreprocessError, match=rf"{main}: episode_19/actions is missing") as error:
        preprocess([sources[0], ("hopper/second-v0", copy)], out, config)
    assert "in preprocess worker" in str(error.value.__cause__)  # raised there, passed on
    assert not out.exists()
    assert not list(tmp_path.glob("*.h5*"))  # no temporary file left either
    assert not multiprocessing.active_children()


def test_a_worker_that_dies_is_reported(
    sources: list[tuple[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed mid-run (e.g. by the OOM killer) fails the run instead of hanging it."""
    monkeypatch.setattr(blocks, "GROUP_EPISODES", 5)
    run = blocks.BlockBuilder.run

    def dies_on_its_second_job(self: blocks.BlockBuilder, reader: Any, job: Any) -> None:
        if job.start == 5:  # first in job 1 (worker 1), which the main process waits for next
            os._exit(3)
        run(self, reader, job)

    monkeypatch.setattr(blocks.BlockBuilder, "run", dies_on_its_second_job)
    out = tmp_path / "t.h5"
    with pytest.raises(RuntimeError, match=r"preprocess worker 1 died \(exit code 3\)"):
        preprocess(sources, out, PreprocessConfig(workers=2))
    assert not out.exists()
    assert not multiprocessing.active_children()
