"""The transitions file: flat HDF5 arrays of one or more datasets, plus statistics and transforms.

Layout (schema version 2), every array chunked along the first axis:
    observations, next_observations  float32 (N, obs_dim)   raw, as the environment emitted them
    actions                          float32 (N, act_dim)   raw, in the env's action bounds
    rewards                          float32 (N,)           raw
    terminals, timeouts              bool    (N,)           timeouts are truncations, not terminal
    episode_ids                      int64   (N,)           index of the episode in the file
    returns_to_go                    float32 (N,)           discounted sum of raw rewards to episode end
    validation                       bool    (N,)           True on held-out (validation) episodes
Attributes: schema_version, env_id, dataset_ids (JSON list), ref_min_score, ref_max_score,
ref_score_source, action_low, action_high, obs_mean, obs_std (training episodes only), episode
return statistics, return_to_go_discount, validation_fraction, split_seed, num_validation_episodes,
and the transforms chosen at preprocess time (normalize_observations, reward_scale, reward_shift),
which `load_transitions` applies on the training device so the file itself stays raw and inspectable.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import torch
from torch import Tensor

from core.errors import PipelineError

# Re-exported: the schema constants live in a torch-free module so preprocessing never loads torch.
from offline_rl.transitions_schema import ARRAY_KEYS as ARRAY_KEYS
from offline_rl.transitions_schema import SCHEMA_VERSION as SCHEMA_VERSION

Split = Literal["all", "train", "validation"]
READ_ROWS = 1 << 20  # rows read per HDF5 call: bounds the host copy while loading


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
        meta = TransitionsMeta(
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
            num_validation_episodes=int(attrs["num_validation_episodes"]),
            return_to_go_discount=float(attrs["return_to_go_discount"]),
        )
    except KeyError as error:
        raise TransitionsFileError(f"{path}: missing attribute {error.args[0]!r}") from None
    _check_statistics(path, meta)
    return meta


def _check_statistics(path: Path, meta: TransitionsMeta) -> None:
    """The attributes training divides by or scales with must fit the arrays and be finite."""
    sizes = {
        "obs_mean": meta.obs_dim,
        "obs_std": meta.obs_dim,
        "action_low": meta.act_dim,
        "action_high": meta.act_dim,
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


@dataclass(frozen=True)
class Transitions:
    """Rows of a dataset as tensors on one device, transforms already applied, actions in [-1, 1]."""

    observations: Tensor
    actions: Tensor
    rewards: Tensor
    next_observations: Tensor
    dones: Tensor  # float: 1.0 where the step was terminal (not merely truncated)
    meta: TransitionsMeta
    # Transformed like the rewards; None where rows were read without their whole episode.
    returns_to_go: Tensor | None = None
    # The dataset's action at the next step of the same episode (ReBRAC's critic penalty); at an
    # episode's last step, where there is none, the step's own action stands in.
    next_actions: Tensor | None = None
    # (rows, width) tensor whose column blocks are observations, actions, rewards,
    # next_observations, dones and next_actions, in that order (`packed_rows`), so that a batch
    # is one gather; None where those fields are separate tensors.
    packed: Tensor | None = None

    def __len__(self) -> int:
        return int(self.observations.shape[0])


def packed_rows(
    rows: int, shapes: list[tuple[int, ...]], device: torch.device
) -> tuple[Tensor, list[Tensor]]:
    """One float32 (rows, width) tensor to hold fields of per-row shape () or (k,) side by side,
    and each field as a column view of it (`row_fields`)."""
    packed = torch.empty(rows, sum(field_widths(shapes)), device=device)
    return packed, row_fields(packed, shapes)


def field_widths(shapes: list[tuple[int, ...]]) -> list[int]:
    """Columns each field takes in packed rows: k for a per-row shape (k,), 1 for ()."""
    return [shape[0] if shape else 1 for shape in shapes]


def row_fields(packed: Tensor, shapes: list[tuple[int, ...]]) -> list[Tensor]:
    """The fields of packed rows (or of a batch gathered from them, with any leading dimensions)
    as column views, shaped (..., rows) for a per-row shape () and (..., rows, k) for (k,)."""
    widths = field_widths(shapes)
    if sum(widths) != packed.shape[-1]:
        raise ValueError(f"packed rows are {packed.shape[-1]} wide, their fields {widths}")
    columns = torch.split(packed, widths, dim=-1)
    return [c if shape else c.squeeze(-1) for c, shape in zip(columns, shapes, strict=True)]


def normalize_actions(actions: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """Map env-bounded actions to [-1, 1]."""
    return (2.0 * (actions - low) / (high - low) - 1.0).clamp(-1.0, 1.0)


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


def read_rows(
    path: Path, file: h5py.File, key: str, start: int, end: int, keep: np.ndarray | None
) -> np.ndarray:
    """Rows [start, end) of one array as float32 (bool flags become 0/1), those where `keep` (a
    mask over the same rows) is True."""
    try:
        host = np.asarray(file[key][start:end], dtype=np.float32)
    except OSError as error:  # the header was intact but the data blocks are not
        raise TransitionsFileError(
            f"{path}: array '{key}' is unreadable ({error}); rerun preprocess"
        ) from None
    if keep is not None:
        host = host[keep]
    if not np.isfinite(host).all():
        raise TransitionsFileError(f"{path}: array '{key}' holds NaN or inf values")
    return host


def apply_transforms(
    raw: dict[str, Tensor], meta: TransitionsMeta, returns_to_go: Tensor | None = None
) -> Transitions:
    """The file's recorded transforms, in place on the raw float32 tensors (no second copy)."""
    device = raw["observations"].device
    observations, next_observations = raw["observations"], raw["next_observations"]
    if meta.normalize_observations:
        mean = torch.tensor(meta.obs_mean, device=device)
        std = torch.tensor(meta.obs_std, device=device)
        observations.sub_(mean).div_(std)
        next_observations.sub_(mean).div_(std)
    low = torch.tensor(meta.action_low, device=device)
    high = torch.tensor(meta.action_high, device=device)
    actions = raw["actions"]
    actions.sub_(low).mul_(2.0).div_(high - low).sub_(1.0).clamp_(-1.0, 1.0)
    return Transitions(
        observations=observations,
        actions=actions,
        rewards=raw["rewards"].mul_(meta.reward_scale).add_(meta.reward_shift),
        next_observations=next_observations,
        dones=raw["terminals"],
        meta=meta,
        returns_to_go=returns_to_go,
    )


def transform_returns_to_go(
    returns_to_go: Tensor, episode_ids: Tensor, meta: TransitionsMeta
) -> Tensor:
    """Returns-to-go of the transformed rewards a*r + b: a*rtg + b*(1 + g + ... + g^(n-1)), n the
    steps left in the episode (rows of one episode are contiguous and in order)."""
    returns_to_go.mul_(meta.reward_scale)
    if meta.reward_shift != 0.0 and len(episode_ids) > 0:
        _, counts = torch.unique_consecutive(episode_ids, return_counts=True)
        ends = torch.repeat_interleave(torch.cumsum(counts, 0), counts)
        steps_left = (ends - torch.arange(len(episode_ids), device=ends.device)).double()
        discount = meta.return_to_go_discount
        geometric = steps_left if discount == 1.0 else (1 - discount**steps_left) / (1 - discount)
        returns_to_go.add_((meta.reward_shift * geometric).float())
    return returns_to_go


def load_transitions(
    path: str | Path, device: torch.device | str = "cpu", split: Split = "all"
) -> Transitions:
    """Read the rows of `split` straight into tensors on `device` and apply the file's transforms.

    One copy on the device: each array is read READ_ROWS rows at a time into a preallocated tensor,
    so the host holds only one such block beyond the result.
    """
    path = Path(path)
    meta = read_meta(path)
    device = torch.device(device)
    raw: dict[str, Tensor] = {}
    with h5py.File(path, "r") as f:
        keep = split_mask(f, split)
        rows = meta.size if keep is None else int(keep.sum())
        if rows == 0:
            raise TransitionsFileError(f"{path}: the {split!r} split holds no transitions")
        keys = ("observations", "actions", "rewards", "next_observations", "terminals")
        # The row fields side by side in one tensor (next_actions last, filled below).
        shapes = [f[key].shape[1:] for key in (*keys, "actions")]
        packed, views = packed_rows(rows, shapes, device)
        outputs = dict(zip(keys, views, strict=False))
        for key in (*keys, "returns_to_go", "episode_ids"):
            tail = f[key].shape[1:]
            dtype = torch.int64 if key == "episode_ids" else torch.float32
            out = outputs.get(key)
            if out is None:
                out = torch.empty((rows, *tail), dtype=dtype, device=device)
            filled = 0
            for start in range(0, meta.size, READ_ROWS):
                end = min(start + READ_ROWS, meta.size)
                rows_kept = None if keep is None else keep[start:end]
                if key == "episode_ids":
                    host = np.asarray(f[key][start:end])
                    host = host if rows_kept is None else host[rows_kept]
                else:
                    host = read_rows(path, f, key, start, end, rows_kept)
                out[filled : filled + len(host)] = torch.from_numpy(host)
                filled += len(host)
            raw[key] = out
    episode_ids = raw.pop("episode_ids")
    returns_to_go = transform_returns_to_go(raw.pop("returns_to_go"), episode_ids, meta)
    data = apply_transforms(raw, meta, returns_to_go)
    next_actions = shift_within_episodes(data.actions, episode_ids, out=views[-1])
    return dataclasses.replace(data, next_actions=next_actions, packed=packed)


def shift_within_episodes(
    actions: Tensor, episode_ids: Tensor, out: Tensor | None = None
) -> Tensor:
    """actions[i + 1] where row i + 1 continues row i's episode, else actions[i] (episode end);
    written into `out` where given (a view of the packed rows)."""
    shifted = actions.clone() if out is None else out.copy_(actions)
    same_episode = episode_ids[1:] == episode_ids[:-1]
    shifted[:-1] = torch.where(same_episode.unsqueeze(-1), actions[1:], actions[:-1])
    return shifted
