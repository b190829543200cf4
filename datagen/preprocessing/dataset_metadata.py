"""A Minari dataset's metadata.json, checked: a Minari version we read, the environment it names,
and spaces a transitions file holds (`transitions.spaces`) that are the environment's own."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import minari

from core.envs import env_registered, make_env
from datagen.preprocessing.minari_reader import PreprocessError
from transitions.spaces import (
    ActionLayout,
    ObservationLayout,
    SpaceError,
    action_layout,
    observation_layout,
)

REQUIRED_METADATA = ("env_spec", "observation_space", "action_space", "minari_version")


@dataclass(frozen=True)
class Spaces:
    """How a dataset's observations and actions become the file's columns (`transitions.spaces`)."""

    observations: ObservationLayout
    actions: ActionLayout


def check_metadata(
    meta_file: Path,
    metadata: Any,
    env_id: str | None,
    dataset_id: str = "",
    observation_keys: Sequence[str] | None = None,
) -> Spaces:
    """A dataset's metadata.json must come from a Minari version we read, and describe `env_id`
    (default: the environment it names) with spaces the transitions file holds, the env's own;
    returns them, the Dict observation's `observation_keys` chosen (None: all)."""
    if not isinstance(metadata, dict):
        raise PreprocessError(f"{meta_file}: expected a JSON object")
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise PreprocessError(f"{meta_file}: missing keys {missing}; not a Minari dataset")
    version = metadata["minari_version"]
    if version not in minari.supported_dataset_versions:
        raise PreprocessError(
            f"{meta_file}: minari_version {version!r} is not readable by Minari "
            f"{minari.__version__} (supported: {', '.join(sorted(minari.supported_dataset_versions))})"
        )
    where = f"{meta_file}: dataset {dataset_id!r}"
    try:
        dataset_env = str(json.loads(str(metadata["env_spec"]))["id"])
        spaces = Spaces(
            observation_layout(
                str(metadata["observation_space"]), f"{where} observation space", observation_keys
            ),
            action_layout(str(metadata["action_space"]), f"{where} action space"),
        )
    except SpaceError:
        raise
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise PreprocessError(f"{meta_file}: malformed space or env_spec ({error})") from None
    expected = env_id or dataset_env
    if dataset_env != expected:
        raise PreprocessError(
            f"{meta_file}: dataset of {dataset_env}, but params say env {expected}"
        )
    if not env_registered(expected):
        raise PreprocessError(f"{meta_file}: unknown environment {expected!r}")
    env = make_env(expected)
    try:
        env_spaces = Spaces(
            observation_layout(
                env.observation_space, f"{expected} observation space", observation_keys
            ),
            action_layout(env.action_space, f"{expected} action space"),
        )
    finally:
        env.close()
    if describe_spaces(spaces) != describe_spaces(env_spaces):
        ours, theirs = describe_spaces(spaces), describe_spaces(env_spaces)
        raise PreprocessError(
            f"{meta_file}: observation/action shapes {ours[0]}, {ours[1]} do not match "
            f"{expected}'s {theirs[0]}, {theirs[1]}"
        )
    return spaces


def describe_spaces(spaces: Spaces) -> tuple[str, str]:
    """What must agree between a dataset and its env (or another dataset): the observation's width
    and keys, the actions' width or Discrete(n, start); Box bounds may differ in their rounding."""
    observations, actions = spaces.observations, spaces.actions
    keys = f" of {observations.key_names}" if observations.keys else ""
    shape = f"uint8 {observations.image}" if observations.image else f"({observations.obs_dim},)"
    if actions.discrete:
        return (f"{shape}{keys}", f"Discrete({actions.num_actions}, start={actions.start})")
    return f"{shape}{keys}", f"({actions.act_dim},)"


def read_metadata(
    dataset_id: str, folder: Path, env_id: str | None, observation_keys: Sequence[str] | None
) -> tuple[dict[str, Any], Spaces]:
    meta_file = folder / "data" / "metadata.json"
    try:
        metadata = json.loads(meta_file.read_text())
    except FileNotFoundError:
        raise PreprocessError(
            f"{meta_file}: dataset {dataset_id!r} not found (run the collect or download stage, "
            "or dvc pull)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PreprocessError(f"{meta_file}: invalid JSON ({error})") from None
    return metadata, check_metadata(meta_file, metadata, env_id, dataset_id, observation_keys)
