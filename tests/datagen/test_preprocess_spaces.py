"""Preprocessing Minari datasets of Discrete actions and Dict observations, as Minari writes them:
the file holds the episodes exactly (action indices, the declared keys flattened in order), its
header says how, and spaces the file cannot hold fail before anything is written, naming the
dataset and the space."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from pydantic import ValidationError

from datagen.preprocessing import blocks
from datagen.preprocessing.config import PreprocessConfig
from datagen.preprocessing.minari_reader import EpisodeReader, PreprocessError
from datagen.preprocessing.preprocess import preprocess
from datagen.preprocessing.workers import can_fork
from tests.datagen.minari_spaces import DICT_ENV, load_episodes, write_rollouts
from transitions.spaces import SpaceError, action_layout

CARTPOLE = "cartpole/random-v0"
DICT = "dictpoint/random-v0"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("minari")
    write_rollouts(root, CARTPOLE, "CartPole-v1", episodes=12, seed=0)
    write_rollouts(root, DICT, DICT_ENV, episodes=15, seed=1)
    return root


def arrays(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with h5py.File(path, "r") as f:
        return {key: f[key][()] for key in f}, dict(f.attrs)


def expected_rows(episodes: list[Any], keys: list[str] | None, start: int) -> dict[str, Any]:
    """The file's rows made from Minari's own reading of the episodes."""

    def flat(observations: Any) -> np.ndarray:
        if keys is None:
            return np.asarray(observations, np.float32)
        return np.concatenate([observations[key] for key in keys], axis=1).astype(np.float32)

    return {
        "observations": np.concatenate([flat(e.observations)[:-1] for e in episodes]),
        "next_observations": np.concatenate([flat(e.observations)[1:] for e in episodes]),
        "actions": np.concatenate([e.actions for e in episodes]) - start,
        "rewards": np.concatenate([e.rewards for e in episodes]).astype(np.float32),
        "terminals": np.concatenate([e.terminations for e in episodes]),
        "episode_ids": np.concatenate([np.full(len(e.rewards), i) for i, e in enumerate(episodes)]),
    }


@pytest.mark.parametrize("chunk_rows", [7, 100_000])  # 7: episodes longer than a block
def test_discrete_actions_are_stored_as_exact_indices(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_rows: int
) -> None:
    monkeypatch.setattr(blocks, "GROUP_EPISODES", 3)  # several jobs, so workers share them
    files = []
    for workers in (1, 2) if can_fork() else (1,):
        out = tmp_path / f"{workers}.h5"
        preprocess(
            [(CARTPOLE, root / CARTPOLE)],
            out,
            PreprocessConfig(chunk_rows=chunk_rows, workers=workers),
        )
        files.append(out.read_bytes())
    assert all(f == files[0] for f in files)
    data, attrs = arrays(out)
    assert data["actions"].dtype == np.int64 and data["actions"].ndim == 1
    for key, value in expected_rows(load_episodes(root, CARTPOLE), None, 0).items():
        np.testing.assert_array_equal(data[key], value, err_msg=key)
    assert attrs["schema_version"] == 3
    assert (attrs["num_actions"], attrs["action_start"]) == (2, 0)
    assert attrs["observation_keys"] == "[]"
    assert attrs["action_low"].shape == attrs["action_high"].shape == (0,)


@pytest.mark.parametrize(
    "keys", [None, ("velocity", "position", "goal"), ("position",)], ids=["all", "reordered", "one"]
)
def test_dict_observations_are_their_declared_keys_in_order(
    root: Path, tmp_path: Path, keys: tuple[str, ...] | None
) -> None:
    out = tmp_path / "dict.h5"
    preprocess([(DICT, root / DICT)], out, PreprocessConfig(observation_keys=keys, chunk_rows=5))
    data, attrs = arrays(out)
    declared = list(keys or ("goal", "position", "velocity"))  # None: the space's (sorted) order
    episodes = load_episodes(root, DICT)
    for key, value in expected_rows(episodes, declared, start=-1).items():
        np.testing.assert_array_equal(data[key], value, err_msg=key)
    widths = {"goal": 1, "position": 2, "velocity": 3}
    assert json.loads(attrs["observation_keys"]) == [[k, widths[k]] for k in declared]
    assert (attrs["num_actions"], attrs["action_start"]) == (3, -1)
    assert set(np.unique(data["actions"])) <= {0, 1, 2}


def edit_space(root: Path, tmp_path: Path, dataset_id: str, key: str, space: Any) -> Path:
    copy = tmp_path / dataset_id
    shutil.copytree(root / dataset_id, copy)
    meta_file = copy / "data" / "metadata.json"
    metadata = json.loads(meta_file.read_text())
    metadata[key] = json.dumps(space)
    meta_file.write_text(json.dumps(metadata))
    return copy


@pytest.mark.parametrize(
    ("key", "space", "named"),
    [
        (
            "action_space",
            {"type": "Text", "max_length": 5},
            r"action space: Text actions are not supported",
        ),
        (
            "observation_space",
            # uint8 images are supported (tests/datagen/test_minigrid_images.py); float ones not
            {"type": "Box", "dtype": "float32", "shape": [8, 8, 3], "low": 0, "high": 1},
            r"observation space: Box\(float32, \(8, 8, 3\)\) is not supported",
        ),
    ],
)
def test_an_unsupported_space_fails_before_any_file_names_dataset_and_space(
    root: Path, tmp_path: Path, key: str, space: Any, named: str
) -> None:
    folder = edit_space(root, tmp_path, CARTPOLE, key, space)
    out = tmp_path / "t.h5"
    with pytest.raises(SpaceError, match=rf"dataset '{CARTPOLE}' {named}"):
        preprocess([(CARTPOLE, folder)], out, PreprocessConfig())
    assert list(tmp_path.glob("*.h5")) == [] and not out.exists()


def test_observation_keys_for_a_box_name_the_key(root: Path, tmp_path: Path) -> None:
    config = PreprocessConfig(observation_keys=("pole",))
    with pytest.raises(SpaceError, match=rf"'{CARTPOLE}' observation space.*\['pole'\].*Box"):
        preprocess([(CARTPOLE, root / CARTPOLE)], tmp_path / "t.h5", config)


def test_an_unknown_observation_key_is_named_with_the_keys_there_are(
    root: Path, tmp_path: Path
) -> None:
    config = PreprocessConfig(observation_keys=("position", "speed"))
    with pytest.raises(SpaceError, match=r"keys \['speed'\] not among \['goal', 'position'"):
        preprocess([(DICT, root / DICT)], tmp_path / "t.h5", config)


def test_observation_keys_must_not_repeat_or_be_empty() -> None:
    with pytest.raises(ValidationError, match="observation keys repeat"):
        PreprocessConfig(observation_keys=("goal", "goal"))
    with pytest.raises(ValidationError, match="at least 1 item"):
        PreprocessConfig(observation_keys=())


def test_concatenated_datasets_must_have_the_same_spaces(root: Path, tmp_path: Path) -> None:
    sources = [(CARTPOLE, root / CARTPOLE), (DICT, root / DICT)]
    with pytest.raises(
        PreprocessError, match=rf"datasets '{CARTPOLE}' and '{DICT}' have different spaces"
    ):
        preprocess(sources, tmp_path / "t.h5", PreprocessConfig())


@pytest.mark.parametrize("chunk_rows", [2, 100_000])  # through h5py, through HDF5's C API
def test_an_action_outside_the_space_is_named(root: Path, tmp_path: Path, chunk_rows: int) -> None:
    copy = tmp_path / CARTPOLE
    shutil.copytree(root / CARTPOLE, copy)
    main = copy / "data" / "main_data.hdf5"
    with h5py.File(main, "a") as f:
        f["episode_3/actions"][2] = 5
    with pytest.raises(PreprocessError, match=rf"{main}: episode_3/actions holds 5, outside"):
        config = PreprocessConfig(workers=1, chunk_rows=chunk_rows)
        preprocess([(CARTPOLE, copy)], tmp_path / "t.h5", config)


def test_discrete_episodes_take_the_direct_path_with_the_same_arrays(root: Path) -> None:
    """HDF5's C API reads int64 actions as stored, as h5py does (Dict observations take h5py)."""
    actions = action_layout(
        json.loads((root / CARTPOLE / "data" / "metadata.json").read_text())["action_space"]
    )
    main = root / CARTPOLE / "data" / "main_data.hdf5"
    with EpisodeReader(main, 1000, actions=actions) as reader:
        assert reader.direct is not None and reader.direct.read(0) is not None
        fast = [next(e.slices).actions for e in reader.episodes()]
    with EpisodeReader(main, 1000, direct=False, actions=actions) as reader:
        slow = [next(e.slices).actions for e in reader.episodes()]
    for ours, theirs in zip(fast, slow, strict=True):
        assert ours.dtype == theirs.dtype == np.int64
        np.testing.assert_array_equal(ours, theirs)


def test_datasets_of_the_same_spaces_concatenate(root: Path, tmp_path: Path) -> None:
    second = write_rollouts(tmp_path, "cartpole/second-v0", "CartPole-v1", episodes=4, seed=9)
    out = tmp_path / "both.h5"
    sources = [(CARTPOLE, root / CARTPOLE), ("cartpole/second-v0", second)]
    preprocess(sources, out, PreprocessConfig())
    episodes = load_episodes(root, CARTPOLE) + load_episodes(tmp_path, "cartpole/second-v0")
    data, attrs = arrays(out)
    for key, value in expected_rows(episodes, None, 0).items():
        np.testing.assert_array_equal(data[key], value, err_msg=key)
    assert json.loads(attrs["dataset_ids"]) == [CARTPOLE, "cartpole/second-v0"]
