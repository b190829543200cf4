"""The transitions file: flat HDF5 arrays of one or more datasets, plus statistics and transforms.

Layout (schema version 1), every array chunked along the first axis:
    observations, next_observations  float32 (N, obs_dim)   raw, as the environment emitted them
    actions                          float32 (N, act_dim)   raw, in the env's action bounds
    rewards                          float32 (N,)           raw
    terminals, timeouts              bool    (N,)           timeouts are truncations, not terminal
    episode_ids                      int64   (N,)           index of the episode in the file
Attributes: schema_version, env_id, dataset_ids (JSON list), ref_min_score, ref_max_score,
ref_score_source, action_low, action_high, obs_mean, obs_std, episode return statistics, and the
transforms chosen at preprocess time (normalize_observations, reward_scale, reward_shift), which
`load_transitions` applies on the training device so the file itself stays raw and inspectable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

SCHEMA_VERSION = 1
ARRAY_KEYS = (
    "observations",
    "actions",
    "rewards",
    "next_observations",
    "terminals",
    "timeouts",
    "episode_ids",
)


class TransitionsFileError(ValueError):
    """The transitions file is missing, truncated, from another schema or holds bad values."""


@dataclass(frozen=True)
class TransitionsMeta:
    """What evaluation and logging need to know about the data a policy was trained on."""

    env_id: str
    dataset_ids: tuple[str, ...]
    obs_dim: int
    act_dim: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    obs_mean: tuple[float, ...]
    obs_std: tuple[float, ...]
    normalize_observations: bool
    reward_scale: float
    reward_shift: float
    ref_min_score: float | None
    ref_max_score: float | None
    ref_score_source: str
    size: int
    num_episodes: int

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransitionsMeta:
        fields: dict[str, Any] = {
            k: (tuple(v) if isinstance(v, list) else v)
            for k, v in data.items()
            if k in cls.__dataclass_fields__
        }
        return cls(**fields)


def read_meta(path: str | Path) -> TransitionsMeta:
    """Read and check the attributes of a transitions file without loading its arrays."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
            missing = [k for k in ARRAY_KEYS if k not in f]
            shapes = {k: f[k].shape for k in ARRAY_KEYS if k in f}
    except FileNotFoundError:
        raise TransitionsFileError(
            f"{path}: transitions file not found (run the preprocess stage)"
        ) from None
    except OSError as error:
        raise TransitionsFileError(f"{path}: not a readable HDF5 file ({error})") from None
    version = attrs.get("schema_version")
    if version != SCHEMA_VERSION:
        raise TransitionsFileError(
            f"{path}: schema_version {version!r}, expected {SCHEMA_VERSION}; rerun preprocess"
        )
    if missing:
        raise TransitionsFileError(f"{path}: missing arrays {missing}")
    size = shapes["observations"][0]
    wrong = [k for k, shape in shapes.items() if shape[0] != size]
    if wrong:
        raise TransitionsFileError(
            f"{path}: arrays {wrong} do not have {size} rows like observations"
        )
    try:
        return TransitionsMeta(
            env_id=str(attrs["env_id"]),
            dataset_ids=tuple(json.loads(attrs["dataset_ids"])),
            obs_dim=int(shapes["observations"][1]),
            act_dim=int(shapes["actions"][1]),
            action_low=tuple(float(x) for x in attrs["action_low"]),
            action_high=tuple(float(x) for x in attrs["action_high"]),
            obs_mean=tuple(float(x) for x in attrs["obs_mean"]),
            obs_std=tuple(float(x) for x in attrs["obs_std"]),
            normalize_observations=bool(attrs["normalize_observations"]),
            reward_scale=float(attrs["reward_scale"]),
            reward_shift=float(attrs["reward_shift"]),
            ref_min_score=_optional_float(attrs.get("ref_min_score")),
            ref_max_score=_optional_float(attrs.get("ref_max_score")),
            ref_score_source=str(attrs.get("ref_score_source", "none")),
            size=int(size),
            num_episodes=int(attrs["num_episodes"]),
        )
    except KeyError as error:
        raise TransitionsFileError(f"{path}: missing attribute {error.args[0]!r}") from None


def _optional_float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if np.isnan(number) else number


@dataclass(frozen=True)
class Transitions:
    """Whole dataset as tensors on one device, transforms already applied, actions in [-1, 1]."""

    observations: Tensor
    actions: Tensor
    rewards: Tensor
    next_observations: Tensor
    dones: Tensor  # float: 1.0 where the step was terminal (not merely truncated)
    meta: TransitionsMeta
    # The dataset's action at the next step of the same episode (ReBRAC's critic penalty); at an
    # episode's last step, where there is none, the step's own action stands in.
    next_actions: Tensor | None = None

    def __len__(self) -> int:
        return int(self.observations.shape[0])


def normalize_actions(actions: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """Map env-bounded actions to [-1, 1]."""
    return (2.0 * (actions - low) / (high - low) - 1.0).clamp(-1.0, 1.0)


def load_transitions(path: str | Path, device: torch.device | str = "cpu") -> Transitions:
    """Read the whole file straight into tensors on `device` (one copy) and apply its transforms."""
    path = Path(path)
    meta = read_meta(path)
    device = torch.device(device)
    arrays: dict[str, Tensor] = {}
    with h5py.File(path, "r") as f:
        for key in ("observations", "actions", "rewards", "next_observations", "terminals"):
            host = np.asarray(f[key][()], dtype=np.float32)
            if not np.isfinite(host).all():
                raise TransitionsFileError(f"{path}: array '{key}' holds NaN or inf values")
            arrays[key] = torch.from_numpy(host).to(device)
        episode_ids = torch.from_numpy(np.asarray(f["episode_ids"][()])).to(device)
    low = torch.tensor(meta.action_low, device=device)
    high = torch.tensor(meta.action_high, device=device)
    observations, next_observations = arrays["observations"], arrays["next_observations"]
    if meta.normalize_observations:
        mean = torch.tensor(meta.obs_mean, device=device)
        std = torch.tensor(meta.obs_std, device=device)
        observations = (observations - mean) / std
        next_observations = (next_observations - mean) / std
    actions = normalize_actions(arrays["actions"], low, high)
    return Transitions(
        observations=observations,
        actions=actions,
        rewards=arrays["rewards"] * meta.reward_scale + meta.reward_shift,
        next_observations=next_observations,
        dones=arrays["terminals"],
        meta=meta,
        next_actions=shift_within_episodes(actions, episode_ids),
    )


def shift_within_episodes(actions: Tensor, episode_ids: Tensor) -> Tensor:
    """actions[i + 1] where row i + 1 continues row i's episode, else actions[i] (episode end)."""
    shifted = actions.clone()
    same_episode = episode_ids[1:] == episode_ids[:-1]
    shifted[:-1] = torch.where(same_episode.unsqueeze(-1), actions[1:], actions[:-1])
    return shifted
