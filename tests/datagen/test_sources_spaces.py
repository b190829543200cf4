"""Imported Minari folders are checked against the spaces a transitions file holds
(`transitions.spaces`): Discrete actions and Dict observations pass, with each key's arrays
checked; anything else is refused naming the folder and the space."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import pytest

from datagen.sources.errors import SourceError
from datagen.sources.minari_folder import import_folder
from tests.datagen.minari_spaces import DICT_ENV, write_rollouts
from transitions.spaces import SpaceError


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("minari")
    return {
        "discrete": write_rollouts(root, "cartpole/random-v0", "CartPole-v1", 3, seed=0),
        "dict": write_rollouts(root, "dictpoint/random-v0", DICT_ENV, 3, seed=0),
    }


@pytest.mark.parametrize("kind", ["discrete", "dict"])
def test_discrete_and_dict_folders_import(
    folders: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    target = import_folder(folders[kind], tmp_path, f"imported/{kind}-v0")
    assert (target / "data" / "main_data.hdf5").exists()


def test_a_text_action_space_is_refused_naming_the_folder(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    copy = tmp_path / "text"
    shutil.copytree(folders["discrete"], copy)
    meta_file = copy / "data" / "metadata.json"
    metadata = json.loads(meta_file.read_text())
    metadata["action_space"] = json.dumps({"type": "Text", "max_length": 4})
    meta_file.write_text(json.dumps(metadata))
    with pytest.raises(SpaceError, match=rf"{copy}: action_space: Text actions are not supported"):
        import_folder(copy, tmp_path / "root", "imported/text-v0")


def test_a_dict_key_of_the_wrong_width_is_named(folders: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "dict"
    shutil.copytree(folders["dict"], copy)
    with h5py.File(copy / "data" / "main_data.hdf5", "a") as f:
        steps = f["episode_1/rewards"].shape[0]
        del f["episode_1/observations/goal"]
        f["episode_1/observations/goal"] = [[0.0, 0.0]] * (steps + 1)
    with pytest.raises(SourceError, match=r"episode_1/observations/goal is \(\d+, 2\), expected"):
        import_folder(copy, tmp_path / "root", "imported/dict-v0")
