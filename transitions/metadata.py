"""Reading a transitions file's header without torch: its attributes and array shapes, checked,
as `TransitionsMeta`, and how many rows each split holds (what evaluation, logging and the stages'
checks need, before or without loading the arrays)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

from core.errors import PipelineError
from transitions.schema import ARRAY_KEYS, READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION
from transitions.spaces import ActionLayout, ObservationLayout

Split = Literal["all", "train", "validation"]


class TransitionsFileError(PipelineError, ValueError):
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
    num_validation_episodes: int = 0
    return_to_go_discount: float = 1.0
    # Discrete(n) actions (transitions/spaces.py): n, and act_dim == n; 0 for Box actions
    num_actions: int = 0
    action_start: int = 0  # Discrete: the env's action for stored index 0
    # Dict observations: (key, width) in the order `observations` concatenates them; () for Box
    observation_keys: tuple[tuple[str, int], ...] = ()
    # uint8 image observations: (H, W, C), obs_dim = H * W * C; () for float32 vectors
    observation_image: tuple[int, ...] = ()

    @property
    def discrete_actions(self) -> bool:
        return self.num_actions > 0

    @property
    def actions(self) -> ActionLayout:
        return ActionLayout(
            self.act_dim, self.num_actions, self.action_start, self.action_low, self.action_high
        )

    @property
    def observations(self) -> ObservationLayout:
        h_w_c = self.observation_image
        image = (h_w_c[0], h_w_c[1], h_w_c[2]) if len(h_w_c) == 3 else None
        return ObservationLayout(self.obs_dim, self.observation_keys, image)

    def to_dict(self) -> dict[str, Any]:
        # A vector file's dict leaves observation_image out: what training fingerprints and agent
        # files hold of it is then as it was before images (a Hopper run resumes across them).
        return {
            k: _lists(v)
            for k, v in self.__dict__.items()
            if k != "observation_image" or self.observation_image
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransitionsMeta:
        fields: dict[str, Any] = {
            k: _tuples(v) for k, v in data.items() if k in cls.__dataclass_fields__
        }
        return cls(**fields)


def _lists(value: Any) -> Any:
    return [_lists(v) for v in value] if isinstance(value, tuple) else value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


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
    if version not in READABLE_SCHEMA_VERSIONS:
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
    num_actions = int(attrs.get("num_actions", 0))  # absent before schema 3: Box actions
    if (len(shapes["actions"]) == 1) != (num_actions > 0):
        raise TransitionsFileError(
            f"{path}: array 'actions' of shape {shapes['actions']} does not fit "
            f"num_actions = {num_actions} (discrete actions are one index a row)"
        )
    try:
        layout = ObservationLayout.from_json(str(attrs.get("observation_keys", "[]")))
        meta = TransitionsMeta(
            env_id=str(attrs["env_id"]),
            dataset_ids=tuple(json.loads(attrs["dataset_ids"])),
            obs_dim=int(shapes["observations"][1]),
            act_dim=num_actions or int(shapes["actions"][1]),
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
            num_validation_episodes=int(attrs["num_validation_episodes"]),
            return_to_go_discount=float(attrs["return_to_go_discount"]),
            num_actions=num_actions,
            action_start=int(attrs.get("action_start", 0)),
            observation_keys=layout.keys if layout else (),
            observation_image=(layout.image or ()) if layout else (),
        )
    except KeyError as error:
        raise TransitionsFileError(f"{path}: missing attribute {error.args[0]!r}") from None
    except (ValueError, TypeError) as error:  # observation_keys malformed
        raise TransitionsFileError(f"{path}: malformed attribute ({error})") from None
    _check_statistics(path, meta)
    widths = sum(width for _, width in meta.observation_keys) or int(
        np.prod(meta.observation_image)
    )
    if (meta.observation_keys or meta.observation_image) and widths != meta.obs_dim:
        raise TransitionsFileError(
            f"{path}: attribute 'observation_keys' {meta.observation_keys} adds up to {widths} "
            f"columns, observations have {meta.obs_dim}"
        )
    return meta


def _check_statistics(path: Path, meta: TransitionsMeta) -> None:
    """The attributes training divides by or scales with must fit the arrays and be finite."""
    bounds = 0 if meta.discrete_actions else meta.act_dim  # discrete actions have no bounds
    sizes = {
        "obs_mean": meta.obs_dim,
        "obs_std": meta.obs_dim,
        "action_low": bounds,
        "action_high": bounds,
    }
    for name, size in sizes.items():
        values = np.asarray(getattr(meta, name), dtype=np.float64)
        if values.shape != (size,):
            raise TransitionsFileError(
                f"{path}: attribute '{name}' has {values.size} values for arrays of width {size}"
            )
        if not np.isfinite(values).all():
            raise TransitionsFileError(f"{path}: attribute '{name}' holds NaN or inf values")
    if min(meta.obs_std) <= 0 or any(
        lo >= hi for lo, hi in zip(meta.action_low, meta.action_high, strict=True)
    ):
        raise TransitionsFileError(f"{path}: obs_std must be > 0 and action_low < action_high")
    if not (np.isfinite(meta.reward_scale) and np.isfinite(meta.reward_shift)):
        raise TransitionsFileError(f"{path}: reward_scale and reward_shift must be finite")


def _optional_float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if np.isnan(number) else number


def split_mask(file: h5py.File, split: Split) -> np.ndarray | None:
    """Rows that belong to `split` (None: every row); whole episodes, so episodes stay contiguous."""
    if split == "all":
        return None
    if split not in ("train", "validation"):
        raise ValueError(f"split {split!r}: expected 'all', 'train' or 'validation'")
    held_out = np.asarray(file["validation"][()], dtype=bool)
    return held_out if split == "validation" else ~held_out


def split_size(path: str | Path, split: Split = "train") -> int:
    """Rows of `split` in the transitions file at `path`, read from its header and validation
    flags only (one byte a row): what a stage checks its batch size against before loading."""
    meta = read_meta(path)
    if meta.num_validation_episodes == 0:
        return 0 if split == "validation" else meta.size
    try:
        with h5py.File(path, "r") as f:
            mask = split_mask(f, split)
    except OSError as error:
        raise TransitionsFileError(f"{path}: unreadable validation flags ({error})") from None
    return meta.size if mask is None else int(np.count_nonzero(mask))
