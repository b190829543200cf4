"""Loading a transitions file's rows into tensors for training: straight onto the training device
in one copy, the file's transforms applied there (`schema.py` has the layout).

Training reads each row's `ROW_ARRAYS` side by side in one packed (rows, width) tensor
(`packed_rows`), so that the replay buffer samples a batch with one gather, plus `next_actions`,
the dataset's action at s' (ReBRAC), derived from `episode_ids`.

Discrete actions (int64 indices in the file) load as one float32 column of exact integers (per-row
shape (), indices far below 2**24), which the transforms leave as they are: a discrete policy
reads them back with `.long()`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import Tensor

from transitions.metadata import (
    Split,
    TransitionsFileError,
    TransitionsMeta,
    read_meta,
    split_mask,
)
from transitions.schema import ROW_ARRAYS

READ_ROWS = 1 << 20  # rows read per HDF5 call: bounds the host copy while loading


@dataclass(frozen=True)
class Batch:
    """Rows of the row arrays as tensors with any leading dimensions: (S, B, ...) from the replay
    buffer (offline_rl/buffer.py: one batch per training seed, seed k's rows drawn by its own
    generator), (B, ...) from the block loader."""

    observations: Tensor
    actions: Tensor
    rewards: Tensor
    next_observations: Tensor
    dones: Tensor
    next_actions: Tensor | None = None  # dataset action at s' (offline data only; ReBRAC uses it)


@dataclass(frozen=True)
class WindowBatch:
    """Windows of `context` consecutive steps of an episode with any leading dimensions, what
    sequence models train on (offline_rl/windows.py samples them): (S, B, K, ...) from the
    sampler (one batch per training seed), (S, n, K, ...) from an evaluation's histories."""

    observations: Tensor  # (..., K, obs_dim)
    actions: Tensor  # (..., K, act_dim), in [-1, 1]
    returns_to_go: Tensor  # (..., K), the file's (transformed) returns-to-go
    timesteps: Tensor  # (..., K) int64: the step's index in its episode (0 on padding)
    mask: Tensor  # (..., K) bool: True on the episode's steps, False on padding


# What a training step takes: a batch of rows or, for a sequence model, of windows.
TrainBatch = Batch | WindowBatch


@dataclass(frozen=True)
class Transitions:
    """Rows of a dataset as tensors on one device, transforms already applied: Box actions in
    [-1, 1], Discrete actions as float indices 0..n-1."""

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
    # Index of each row's episode (int64; rows of an episode are contiguous and in order): the
    # window sampler of sequence models (offline_rl/windows.py) reads episode boundaries from it.
    episode_ids: Tensor | None = None
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


def read_rows(
    path: Path,
    file: h5py.File,
    key: str,
    start: int,
    end: int,
    keep: np.ndarray | None,
    dtype: type = np.float32,
) -> np.ndarray:
    """Rows [start, end) of one array as float32 (bool flags become 0/1), or as `dtype` (an
    image's uint8), those where `keep` (a mask over the same rows) is True."""
    try:
        host: np.ndarray = np.asarray(file[key][start:end], dtype=dtype)
    except OSError as error:  # the header was intact but the data blocks are not
        raise TransitionsFileError(
            f"{path}: array '{key}' is unreadable ({error}); rerun preprocess"
        ) from None
    if keep is not None:
        host = host[keep]
    if not np.isfinite(host).all():
        raise TransitionsFileError(f"{path}: array '{key}' holds NaN or inf values")
    return host


def check_action_indices(path: Path, actions: np.ndarray, meta: TransitionsMeta) -> None:
    """Discrete actions must be indices 0..n-1 (a policy indexes its n outputs with them)."""
    if meta.discrete_actions and actions.size:
        low, high = int(actions.min()), int(actions.max())
        if low < 0 or high >= meta.num_actions:
            raise TransitionsFileError(
                f"{path}: array 'actions' holds {low if low < 0 else high}, not an index of "
                f"Discrete({meta.num_actions}); rerun preprocess"
            )


@dataclass(frozen=True)
class Transforms:
    """The file's recorded transforms as tensors on one device, applied in place: the one
    definition that `load_transitions` applies to whole columns and disk storage
    (offline_rl/disk_buffer.py) to each gathered batch. Every step is an elementwise IEEE
    operation, so a row comes out bit for bit the same either way."""

    meta: TransitionsMeta
    obs_mean: Tensor
    obs_std: Tensor
    action_low: Tensor
    action_high: Tensor

    @classmethod
    def of(cls, meta: TransitionsMeta, device: torch.device) -> Transforms:
        return cls(
            meta,
            torch.tensor(meta.obs_mean, device=device),
            torch.tensor(meta.obs_std, device=device),
            torch.tensor(meta.action_low, device=device),
            torch.tensor(meta.action_high, device=device),
        )

    def observations_(self, observations: Tensor) -> Tensor:
        # Images stay the stored bytes; the encoder scales them (preprocess refuses to normalise).
        if self.meta.normalize_observations and not self.meta.observation_image:
            observations.sub_(self.obs_mean).div_(self.obs_std)
        return observations

    def actions_(self, actions: Tensor) -> Tensor:
        """Box actions into [-1, 1] from the action bounds; Discrete action indices untouched."""
        if self.meta.discrete_actions:
            return actions
        low, high = self.action_low, self.action_high
        return actions.sub_(low).mul_(2.0).div_(high - low).sub_(1.0).clamp_(-1.0, 1.0)

    def rewards_(self, rewards: Tensor) -> Tensor:
        return rewards.mul_(self.meta.reward_scale).add_(self.meta.reward_shift)

    def returns_to_go_(self, returns_to_go: Tensor, steps_left: Tensor | None) -> Tensor:
        """Returns-to-go of the transformed rewards a*r + b: a*rtg + b*(1 + g + ... + g^(n-1)),
        n = `steps_left`, the steps from the row to its episode's end (the row's included; only
        read where b is not 0)."""
        returns_to_go.mul_(self.meta.reward_scale)
        if self.meta.reward_shift != 0.0:
            if steps_left is None:
                raise ValueError("shifted rewards: the returns-to-go need each row's steps left")
            n, discount = steps_left.double(), self.meta.return_to_go_discount
            geometric = n if discount == 1.0 else (1 - discount**n) / (1 - discount)
            returns_to_go.add_((self.meta.reward_shift * geometric).float())
        return returns_to_go


def apply_transforms(
    raw: dict[str, Tensor], meta: TransitionsMeta, returns_to_go: Tensor | None = None
) -> Transitions:
    """The file's recorded transforms, in place on the raw float32 tensors (no second copy)."""
    transforms = Transforms.of(meta, raw["observations"].device)
    return Transitions(
        observations=transforms.observations_(raw["observations"]),
        actions=transforms.actions_(raw["actions"]),
        rewards=transforms.rewards_(raw["rewards"]),
        next_observations=transforms.observations_(raw["next_observations"]),
        dones=raw["terminals"],
        meta=meta,
        returns_to_go=returns_to_go,
    )


def transform_returns_to_go(
    returns_to_go: Tensor, episode_ids: Tensor, meta: TransitionsMeta
) -> Tensor:
    """The file's returns-to-go, transformed as its rewards (`Transforms.returns_to_go_`), for
    whole episodes' rows (contiguous and in order)."""
    steps_left = None
    if meta.reward_shift != 0.0:
        _, counts = torch.unique_consecutive(episode_ids, return_counts=True)
        ends = torch.repeat_interleave(torch.cumsum(counts, 0), counts)
        steps_left = ends - torch.arange(len(episode_ids), device=ends.device)
    return Transforms.of(meta, returns_to_go.device).returns_to_go_(returns_to_go, steps_left)


def load_transitions(
    path: str | Path, device: torch.device | str = "cpu", split: Split = "all"
) -> Transitions:
    """Read the rows of `split` straight into tensors on `device` and apply the file's transforms.

    One copy on the device: each array is read READ_ROWS rows at a time into a preallocated tensor,
    so the host holds only one such block beyond the result. Image observations stay uint8, in
    tensors of their own beside the packed float32 rows: never a float copy of the dataset.
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
        # The row arrays side by side in one tensor (next_actions last, filled below); an image's
        # observations in uint8 tensors of their own.
        image = bool(meta.observation_image)
        in_packed = [k for k in ROW_ARRAYS if not (image and k in IMAGE_ARRAYS)]
        shapes = [f[key].shape[1:] for key in (*in_packed, "actions")]
        packed, views = packed_rows(rows, shapes, device)
        outputs = dict(zip(in_packed, views, strict=False))
        for key in (*ROW_ARRAYS, "returns_to_go", "episode_ids"):
            tail = f[key].shape[1:]
            as_image = image and key in IMAGE_ARRAYS
            dtype = torch.int64 if key == "episode_ids" else torch.float32
            dtype = torch.uint8 if as_image else dtype
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
                    host_dtype = np.uint8 if as_image else np.float32
                    host = read_rows(path, f, key, start, end, rows_kept, host_dtype)
                if key == "actions":
                    check_action_indices(path, host, meta)
                out[filled : filled + len(host)] = torch.from_numpy(host)
                filled += len(host)
            raw[key] = out
    episode_ids = raw.pop("episode_ids")
    returns_to_go = transform_returns_to_go(raw.pop("returns_to_go"), episode_ids, meta)
    data = apply_transforms(raw, meta, returns_to_go)
    next_actions = shift_within_episodes(data.actions, episode_ids, out=views[-1])
    return dataclasses.replace(
        data, next_actions=next_actions, episode_ids=episode_ids, packed=packed
    )


# The arrays an image fills (uint8 rows of H * W * C bytes), kept out of the packed float32 rows.
IMAGE_ARRAYS = ("observations", "next_observations")


def shift_within_episodes(
    actions: Tensor, episode_ids: Tensor, out: Tensor | None = None
) -> Tensor:
    """actions[i + 1] where row i + 1 continues row i's episode, else actions[i] (episode end);
    written into `out` where given (a view of the packed rows)."""
    shifted = actions.clone() if out is None else out.copy_(actions)
    same_episode = episode_ids[1:] == episode_ids[:-1]
    if actions.dim() > 1:  # Box actions (rows, k); discrete indices are (rows,)
        same_episode = same_episode.unsqueeze(-1)
    shifted[:-1] = torch.where(same_episode, actions[1:], actions[:-1])
    return shifted
