from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from datagen.preprocessing.config import PreprocessConfig
from datagen.preprocessing.minari_reader import PreprocessError
from datagen.preprocessing.preprocess import preprocess
from transitions.loader import load_transitions
from transitions.metadata import read_meta
from transitions.schema import SCHEMA_VERSION


def reference_transitions(dataset: Path) -> dict[str, np.ndarray]:
    """Straightforward per-episode construction to check the streaming writer against."""
    parts: dict[str, list[np.ndarray]] = {
        k: []
        for k in (
            "observations",
            "next_observations",
            "actions",
            "rewards",
            "terminals",
            "timeouts",
            "episode_ids",
        )
    }
    with h5py.File(dataset / "data" / "main_data.hdf5", "r") as f:
        for index in range(len(f)):
            group = f[f"episode_{index}"]
            obs = group["observations"][()]
            steps = len(group["rewards"])
            parts["observations"].append(obs[:-1])
            parts["next_observations"].append(obs[1:])
            parts["actions"].append(group["actions"][()])
            parts["rewards"].append(group["rewards"][()])
            parts["terminals"].append(group["terminations"][()])
            parts["timeouts"].append(group["truncations"][()])
            parts["episode_ids"].append(np.full(steps, index))
    return {k: np.concatenate(v) for k, v in parts.items()}


@pytest.mark.parametrize("chunk_rows", [1000, 100_000])
def test_matches_reference_whatever_the_chunk(
    random_dataset: Path, tmp_path: Path, chunk_rows: int
) -> None:
    out = tmp_path / "t.h5"
    preprocess([("hopper/random-v0", random_dataset)], out, PreprocessConfig(chunk_rows=chunk_rows))
    expected = reference_transitions(random_dataset)
    with h5py.File(out, "r") as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        for key, value in expected.items():
            np.testing.assert_allclose(f[key][()], value.astype(f[key].dtype), rtol=1e-6)
        np.testing.assert_allclose(
            f.attrs["obs_mean"], expected["observations"].mean(0), rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(
            f.attrs["obs_std"], expected["observations"].std(0), rtol=1e-4, atol=1e-5
        )
        # a truncated step is never terminal
        assert not np.any(f["terminals"][()] & f["timeouts"][()])
        assert f["timeouts"][-1]


def test_transforms_applied_on_load(random_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.h5"
    preprocess(
        [("hopper/random-v0", random_dataset)],
        out,
        PreprocessConfig(reward_normalization="return_range", reward_shift=-1.0),
    )
    meta = read_meta(out)
    data = load_transitions(out)
    expected = reference_transitions(random_dataset)
    returns = np.bincount(expected["episode_ids"], weights=expected["rewards"])
    scale = 1000.0 / (returns.max() - returns.min())
    assert meta.reward_scale == pytest.approx(scale, rel=1e-5)
    np.testing.assert_allclose(data.rewards.numpy(), expected["rewards"] * scale - 1.0, rtol=1e-4)
    normalized = (expected["observations"] - expected["observations"].mean(0)) / np.maximum(
        expected["observations"].std(0), 1e-3
    )
    np.testing.assert_allclose(data.observations.numpy(), normalized, atol=1e-3)


def test_missing_dataset_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(PreprocessError, match=r"metadata.json.*not found"):
        preprocess([("hopper/none-v0", tmp_path / "none")], tmp_path / "t.h5", PreprocessConfig())
    assert not (tmp_path / "t.h5").exists()


def test_nan_observation_is_rejected(random_dataset: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(random_dataset, copy)
    with h5py.File(copy / "data" / "main_data.hdf5", "a") as f:
        f["episode_2/observations"][1, 0] = np.nan
    meta = json.loads((copy / "data" / "metadata.json").read_text())
    assert meta["total_steps"] == 600
    with pytest.raises(PreprocessError, match="episode_2/observations holds NaN"):
        preprocess([("hopper/random-v0", copy)], tmp_path / "t.h5", PreprocessConfig())
    assert not (tmp_path / "t.h5").exists()


@pytest.mark.parametrize("compression", ["none", "lzf"])
def test_uncompressed_arrays_are_contiguous_and_hold_the_same_rows(
    random_dataset: Path, tmp_path: Path, compression: str
) -> None:
    """compression: none writes each array as one contiguous dataset (what disk training maps),
    compressed files stay chunked; the rows are the same either way."""
    out = tmp_path / f"{compression}.h5"
    preprocess(
        [("hopper/random-v0", random_dataset)],
        out,
        PreprocessConfig(chunk_rows=100, compression=compression),  # type: ignore[arg-type]
    )
    expected = reference_transitions(random_dataset)
    with h5py.File(out, "r") as f:
        for key, values in expected.items():
            assert (f[key].chunks is None) == (compression == "none"), key
            np.testing.assert_array_equal(f[key][()], values.astype(f[key].dtype), err_msg=key)


@pytest.mark.parametrize("declared", [599, 601, None])
def test_the_metadata_step_count_is_not_trusted(
    random_dataset: Path, tmp_path: Path, declared: int | None
) -> None:
    """Files from other tools may declare a wrong `total_steps`, or none: the contiguous file is
    sized by the steps the episodes hold, so the same rows are written either way."""
    copy = tmp_path / "copy"
    shutil.copytree(random_dataset, copy)
    meta_file = copy / "data" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    meta.pop("total_steps")
    meta_file.write_text(json.dumps(meta | ({} if declared is None else {"total_steps": declared})))
    preprocess([("hopper/random-v0", copy)], tmp_path / "t.h5", PreprocessConfig())
    with h5py.File(tmp_path / "t.h5", "r") as f:
        assert f["rewards"].shape[0] == 600 and f["rewards"].chunks is None


def test_an_episode_without_rewards_is_named(random_dataset: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(random_dataset, copy)
    with h5py.File(copy / "data" / "main_data.hdf5", "a") as f:
        del f["episode_1/rewards"]
    with pytest.raises(PreprocessError, match="episode_1 has no 'rewards' array"):
        preprocess([("hopper/random-v0", copy)], tmp_path / "t.h5", PreprocessConfig())
    assert not (tmp_path / "t.h5").exists()
