"""Existing Minari dataset folders: validated, then copied (or linked) into the import root.

A folder is accepted when `data/metadata.json` is readable JSON from a Minari version this one
supports, the spaces it declares are flat boxes, and each episode's arrays have the lengths and
widths those spaces imply (T + 1 observations, T actions, rewards, terminations, truncations).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import h5py
import minari

from core.atomic import atomic_dir, remove_stale_siblings
from datagen.sources.errors import SourceError

DATA_FILE = "main_data.hdf5"


def read_metadata(folder: Path) -> dict[str, Any]:
    path = folder / "data" / "metadata.json"
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        raise SourceError(f"{path}: not found; is {folder} a Minari dataset folder?") from None
    except (OSError, json.JSONDecodeError) as error:
        raise SourceError(f"{path}: unreadable ({error})") from None
    if not isinstance(metadata, dict):
        raise SourceError(f"{path}: expected a JSON object")
    version = metadata.get("minari_version")
    if version not in minari.supported_dataset_versions:
        raise SourceError(
            f"{path}: written by Minari {version!r}, which Minari {minari.__version__} cannot read "
            f"(supported: {', '.join(sorted(minari.supported_dataset_versions))})"
        )
    return metadata


def _box_dim(metadata: dict[str, Any], key: str, folder: Path) -> int:
    try:
        space = json.loads(metadata[key])
        shape = space["shape"]
    except (KeyError, TypeError, json.JSONDecodeError):
        raise SourceError(f"{folder}: metadata has no readable {key}") from None
    if space.get("type") != "Box" or len(shape) != 1:
        raise SourceError(f"{folder}: {key} is {space.get('type')} {shape}; only flat Box spaces")
    return int(shape[0])


def validate(folder: Path) -> dict[str, Any]:
    """Return the metadata of a readable, self-consistent Minari dataset folder."""
    metadata = read_metadata(folder)
    if metadata.get("data_format", "hdf5") != "hdf5":
        raise SourceError(
            f"{folder}: stored as {metadata['data_format']!r}; the pipeline reads HDF5 datasets only"
        )
    obs_dim = _box_dim(metadata, "observation_space", folder)
    act_dim = _box_dim(metadata, "action_space", folder)
    data_file = folder / "data" / DATA_FILE
    try:
        f = h5py.File(data_file, "r")
    except OSError as error:
        raise SourceError(f"{data_file}: unreadable ({error})") from None
    with f:
        if len(f) != metadata.get("total_episodes", len(f)):
            raise SourceError(
                f"{data_file}: {len(f)} episodes, metadata says {metadata['total_episodes']}"
            )
        for name, group in f.items():
            try:
                steps = group["rewards"].shape[0]
                shapes = {
                    "observations": (group["observations"].shape, (steps + 1, obs_dim)),
                    "actions": (group["actions"].shape, (steps, act_dim)),
                    "terminations": (group["terminations"].shape, (steps,)),
                    "truncations": (group["truncations"].shape, (steps,)),
                }
            except (KeyError, AttributeError) as error:
                raise SourceError(f"{data_file}: {name} lacks an array ({error})") from None
            for key, (actual, expected) in shapes.items():
                if tuple(actual) != expected:
                    raise SourceError(f"{data_file}: {name}/{key} is {actual}, expected {expected}")
    return metadata


def import_folder(folder: Path, root: Path, dataset_id: str, link: bool = False) -> Path:
    """Validate `folder` and place it at `root/dataset_id` (a copy, or a symlink when `link`)."""
    folder = folder.resolve()
    metadata = validate(folder)
    target = root / dataset_id
    remove_stale_siblings(target)
    with atomic_dir(target) as tmp:
        if link:
            (tmp / "data").symlink_to(folder / "data", target_is_directory=True)
        else:
            shutil.copytree(folder / "data", tmp / "data")
        if metadata.get("dataset_id") != dataset_id and not link:
            metadata["dataset_id"] = dataset_id  # minari.load_dataset checks the id it asked for
            (tmp / "data" / "metadata.json").write_text(json.dumps(metadata))
    return target
