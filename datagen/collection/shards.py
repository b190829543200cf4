"""Sampled datasets as fixed-size shards: the unit of parallel work and of resumption.

A dataset of `steps` steps is cut into shards of `shard_steps` steps (the last one shorter). Shard
k resets its episodes with seeds `seed_base + k * stride + j` and seeds its policy's sampling from
`seed_base + k * stride`, so its contents depend only on the recipe and k, never on how many
workers run or in which order they finish: the merged dataset is identical for 1 or N workers.
Each shard's last episode is cut at the shard's budget and marked truncated (a timeout).

Workers return the shard's arrays (no shared disk needed, so Ray workers on other machines work);
the driver writes each finished shard to `<shards_dir>/shard_<k>.h5` with its fingerprint, and a
later run with the same fingerprint reuses it instead of collecting it again. A Dict
observation is kept per key, as `observations/<key>` arrays.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from core.atomic import atomic_path
from core.envs import make_env
from datagen.behavior.policies import RandomPolicy, load_policy
from datagen.collection.rollouts import BatchPolicy, Episode, rollout_episodes, row

ShardArrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class PolicySpec:
    """What a worker needs to rebuild a behaviour policy: `random`, or a checkpoint's bytes."""

    kind: str  # "random" | "checkpoint"
    checkpoint_bytes: bytes = b""
    checkpoint_name: str = ""
    deterministic: bool = False

    def digest(self) -> str:
        return hashlib.sha256(self.checkpoint_bytes).hexdigest() if self.checkpoint_bytes else ""

    @classmethod
    def from_checkpoint(cls, path: Path, deterministic: bool) -> PolicySpec:
        return cls("checkpoint", Path(path).read_bytes(), str(path), deterministic)


@dataclass(frozen=True)
class ShardJob:
    env_id: str
    policy: PolicySpec
    index: int
    steps: int
    seed_base: int  # episode j of this shard resets with seed_base + j
    num_envs: int

    def fingerprint(self) -> str:
        fields = {k: v for k, v in asdict(self).items() if k != "policy"}
        fields |= {"policy_kind": self.policy.kind, "policy_sha256": self.policy.digest()}
        fields |= {"deterministic": self.policy.deterministic, "format": 1}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def plan_shards(
    env_id: str, policy: PolicySpec, steps: int, seed_base: int, shard_steps: int, num_envs: int
) -> list[ShardJob]:
    # Episodes are at least one step long, so a shard starts at most shard_steps + num_envs episodes.
    stride = shard_steps + num_envs
    return [
        ShardJob(
            env_id, policy, k, min(shard_steps, steps - start), seed_base + k * stride, num_envs
        )
        for k, start in enumerate(range(0, steps, shard_steps))
    ]


def _build_policy(job: ShardJob) -> BatchPolicy:
    if job.policy.kind == "random":
        return RandomPolicy(make_env(job.env_id).action_space, job.seed_base)
    with tempfile.NamedTemporaryFile(suffix=".pt") as f:
        f.write(job.policy.checkpoint_bytes)
        f.flush()
        return load_policy(f.name, deterministic=job.policy.deterministic, seed=job.seed_base)


def run_shard(job: ShardJob) -> ShardArrays:
    """Collect one shard (in whichever process or machine runs it) and return its arrays."""
    # One thread: the same float results on every worker, and workers do not fight over cores.
    torch.set_num_threads(1)
    torch.manual_seed(job.seed_base)
    policy = _build_policy(job)
    episodes = list(rollout_episodes(job.env_id, policy, job.steps, job.seed_base, job.num_envs))
    return pack(episodes)


def pack(episodes: list[Episode]) -> ShardArrays:
    parts = [_flat_keys(e.arrays()) for e in episodes]
    out = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    out["lengths"] = np.asarray([len(e) for e in episodes], dtype=np.int64)
    out["seeds"] = np.asarray([e.seed for e in episodes], dtype=np.int64)
    return out


def _flat_keys(arrays: dict[str, Any]) -> ShardArrays:
    """A Dict observation's arrays under `observations/<key>` (HDF5 makes that a group)."""
    out: ShardArrays = {}
    for name, value in arrays.items():
        if isinstance(value, Mapping):
            out |= {f"{name}/{key}": array for key, array in value.items()}
        else:
            out[name] = value
    return out


def _observations(arrays: ShardArrays) -> Any:
    """The shard's observations: one array, or a dict of them per key."""
    if "observations" in arrays:
        return arrays["observations"]
    prefix = "observations/"
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def unpack(arrays: ShardArrays) -> Iterator[Episode]:
    observations = _observations(arrays)
    step, obs_row = 0, 0
    for length, seed in zip(arrays["lengths"].tolist(), arrays["seeds"].tolist(), strict=True):
        sl = slice(step, step + length)
        yield Episode(
            seed=int(seed),
            observations=[row(observations, i) for i in range(obs_row, obs_row + length + 1)],
            actions=list(arrays["actions"][sl]),
            rewards=arrays["rewards"][sl].tolist(),
            terminations=arrays["terminations"][sl].tolist(),
            truncations=arrays["truncations"][sl].tolist(),
        )
        step += length
        obs_row += length + 1


def shard_path(shards_dir: Path, job: ShardJob) -> Path:
    return Path(shards_dir) / f"shard_{job.index:05d}.h5"


def save_shard(path: Path, job: ShardJob, arrays: ShardArrays) -> None:
    with atomic_path(path, ".h5") as tmp, h5py.File(tmp, "w") as f:
        f.attrs["fingerprint"] = job.fingerprint()
        for key, value in arrays.items():
            f.create_dataset(key, data=value)


def load_shard(path: Path, job: ShardJob) -> ShardArrays | None:
    """The saved shard if it was made by exactly this job, else None (collect it again)."""
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("fingerprint") != job.fingerprint():
                return None
            arrays: ShardArrays = {}
            f.visititems(
                lambda name, item: (
                    arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None
                )
            )
            return arrays
    except (OSError, KeyError):
        return None
