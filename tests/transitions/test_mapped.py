from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from datagen.preprocessing.config import PreprocessConfig
from datagen.preprocessing.preprocess import preprocess
from transitions.loader import shift_within_episodes
from transitions.mapped import MappedRows
from transitions.metadata import Split, TransitionsFileError

SPLITS: tuple[Split, ...] = ("all", "train", "validation")


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory, random_dataset: Path) -> Path:
    """Validation episodes scattered through the file: the train split is several runs of rows."""
    out = tmp_path_factory.mktemp("mapped") / "held_out.h5"
    config = PreprocessConfig(chunk_rows=100, validation_fraction=0.3)
    preprocess([("hopper/random-v0", random_dataset)], out, config)
    return out


@pytest.mark.parametrize("split", SPLITS)
def test_gathered_rows_are_the_splits_rows_in_file_order(held_out: Path, split: Split) -> None:
    """Index i of a split is the i-th row of that split in file order (as load_transitions stacks
    them), and the next action stays inside the row's episode."""
    with h5py.File(held_out, "r") as f:
        arrays = {key: f[key][()] for key in f}
    keep = {
        "all": np.ones(len(arrays["rewards"]), bool),
        "train": ~arrays["validation"],
        "validation": arrays["validation"],
    }[split]
    assert 0 < keep.sum() < len(keep) or split == "all"
    rows = MappedRows(held_out, split)
    try:
        assert rows.size == keep.sum()
        gathered = rows.gather(np.arange(rows.size)[::-1].copy())[::-1]  # any order
        actions = arrays["actions"][keep]
        following = shift_within_episodes(
            torch.from_numpy(actions), torch.from_numpy(arrays["episode_ids"][keep])
        ).numpy()
        expected = np.concatenate(
            [
                arrays["observations"][keep],
                actions,
                arrays["rewards"][keep, None],
                arrays["next_observations"][keep],
                arrays["terminals"][keep, None].astype(np.float32),
                following,
            ],
            axis=1,
        )
        np.testing.assert_array_equal(gathered, expected)
    finally:
        rows.close()


def test_a_compressed_file_cannot_be_mapped_and_says_what_to_change(
    random_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "lzf.h5"
    preprocess([("hopper/random-v0", random_dataset)], out, PreprocessConfig(compression="lzf"))
    with pytest.raises(TransitionsFileError, match=r"preprocess\.compression: none"):
        MappedRows(out)


def test_a_non_finite_row_is_named_when_gathered(random_dataset: Path, tmp_path: Path) -> None:
    """Memory storage checks every value as it loads; disk storage each batch as it gathers."""
    out = tmp_path / "nan.h5"
    preprocess([("hopper/random-v0", random_dataset)], out, PreprocessConfig())
    with h5py.File(out, "a") as f:
        f["rewards"][7] = np.nan
    rows = MappedRows(out)
    try:
        rows.gather(np.array([1, 2, 3]))  # rows without it are fine
        with pytest.raises(TransitionsFileError, match=r"rows \[7\] hold NaN or inf"):
            rows.gather(np.array([1, 7, 3]))
    finally:
        rows.close()
