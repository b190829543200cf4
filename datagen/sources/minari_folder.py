"""Existing Minari dataset folders: validated, then copied (or linked) into the import root.

A folder is accepted when `data/metadata.json` is readable JSON from a Minari version this one
supports, the spaces it declares are ones a transitions file holds (`transitions.spaces`: Box or
Discrete actions, Box or Dict-of-Box observations), and each episode's arrays have the lengths
and widths those spaces imply (T + 1 observations, per key of a Dict, T actions, rewards,
terminations, truncations).
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
from transitions.spaces import ActionLayout, ObservationLayout, action_layout, observation_layout

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


def _space(metadata: dict[str, Any], key: str, folder: Path) -> str:
    try:
        space = metadata[key]
        json.loads(space)
    except (KeyError, TypeError, json.JSONDecodeError):
        raise SourceError(f"{folder}: metadata has no readable {key}") from None
    return str(space)


def _expected_shapes(
    observations: ObservationLayout, actions: ActionLayout, steps: int
) -> dict[str, tuple[int, ...]]:
    """Each array of an episode of `steps` steps and the shape the spaces give it."""
    shapes = {f"observations/{key}": (steps + 1, width) for key, width in observations.keys} or {
        "observations": (steps + 1, observations.obs_dim)
    }
    return shapes | {
        "actions": (steps, *actions.row_shape),
        "terminations": (steps,),
        "truncations": (steps,),
    }


def validate(folder: Path) -> dict[str, Any]:
    """Return the metadata of a readable, self-consistent Minari dataset folder."""
    metadata = read_metadata(folder)
    if metadata.get("data_format", "hdf5") != "hdf5":
        raise SourceError(
            f"{folder}: stored as {metadata['data_format']!r}; the pipeline reads HDF5 datasets only"
        )
    observations = observation_layout(
        _space(metadata, "observation_space", folder), f"{folder}: observation_space"
    )
    actions = action_layout(_space(metadata, "action_space", folder), f"{folder}: action_space")
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
                expected_shapes = _expected_shapes(observations, actions, group["rewards"].shape[0])
                shapes = {key: (group[key].shape, shape) for key, shape in expected_shapes.items()}
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
