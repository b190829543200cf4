"""Minari datasets -> one flat transitions file (see offline_rl.transitions for the layout).

Streams episode by episode straight from each dataset's HDF5 file and writes in row chunks, so peak
memory is set by `chunk_rows`, not by the dataset. Statistics (observation mean/std, episode return
range) are accumulated in the same pass and stored as attributes.

Episode boundaries: next_observations come from the episode's own observation sequence (Minari
stores T+1 observations per episode), so no transition crosses episodes and the last transition of
a truncated episode keeps its true next observation. D4RL's `qlearning_dataset` instead pairs row i
with row i+1 of the flat arrays and drops the final step of each timed-out episode; we keep it,
marked `timeouts=True, terminals=False`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import h5py
import minari
import numpy as np
from pydantic import Field

from offline_rl.atomic import atomic_path
from offline_rl.config import StrictModel
from offline_rl.transitions import SCHEMA_VERSION


class PreprocessError(ValueError):
    """A source dataset is missing, unreadable, inconsistent or holds non-finite values."""


class PreprocessConfig(StrictModel):
    datasets: tuple[str, ...] = Field(default=("medium",), min_length=1)
    normalize_observations: bool = True
    # "return_range": rewards * 1000 / (max episode return - min episode return), as IQL does.
    reward_normalization: Literal["none", "return_range"] = "none"
    reward_scale: float = Field(default=1.0, gt=0)
    reward_shift: float = 0.0
    chunk_rows: int = Field(default=100_000, ge=1_000)
    compression: Literal["none", "gzip", "lzf"] = "none"


REQUIRED_METADATA = ("env_spec", "observation_space", "action_space", "minari_version")


def check_metadata(meta_file: Path, metadata: Any, env_id: str | None) -> dict[str, Any]:
    """A dataset's metadata.json must come from a Minari version we read, and describe `env_id`
    (default: the environment it names) with the observation and action shapes of that env."""
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
    try:
        dataset_env = str(json.loads(str(metadata["env_spec"]))["id"])
        obs_shape = tuple(json.loads(str(metadata["observation_space"]))["shape"])
        act_shape = tuple(json.loads(str(metadata["action_space"]))["shape"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise PreprocessError(f"{meta_file}: malformed space or env_spec ({error})") from None
    expected = env_id or dataset_env
    if dataset_env != expected:
        raise PreprocessError(
            f"{meta_file}: dataset of {dataset_env}, but params say env {expected}"
        )
    if expected not in gym.registry:
        raise PreprocessError(f"{meta_file}: unknown environment {expected!r}")
    env = gym.make(expected)
    spaces = (env.observation_space.shape, env.action_space.shape)
    env.close()
    if (obs_shape, act_shape) != spaces:
        raise PreprocessError(
            f"{meta_file}: observation/action shapes {obs_shape}, {act_shape} do not match "
            f"{expected}'s {spaces[0]}, {spaces[1]}"
        )
    return metadata


@dataclass
class RunningStats:
    """Chan et al.'s parallel mean/variance merge: exact, in one pass, chunk by chunk."""

    count: int = 0
    mean: np.ndarray | None = None
    m2: np.ndarray | None = None

    def update(self, x: np.ndarray) -> None:
        n = x.shape[0]
        if n == 0:
            return
        x64 = x.astype(np.float64)
        batch_mean = x64.mean(0)
        batch_m2 = ((x64 - batch_mean) ** 2).sum(0)
        if self.mean is None or self.m2 is None:
            self.count, self.mean, self.m2 = n, batch_mean, batch_m2
            return
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + batch_m2 + delta**2 * self.count * n / total
        self.count = total

    @property
    def std(self) -> np.ndarray:
        assert self.m2 is not None
        return np.sqrt(self.m2 / max(self.count, 1))


@dataclass
class EpisodeArrays:
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray


def read_episodes(main_file: Path) -> Iterator[EpisodeArrays]:
    """Yield episodes of a Minari HDF5 file in id order, checked as they are read."""
    try:
        f = h5py.File(main_file, "r")
    except FileNotFoundError:
        raise PreprocessError(f"{main_file}: Minari data file not found") from None
    except OSError as error:
        raise PreprocessError(f"{main_file}: unreadable HDF5 file ({error})") from None
    with f:
        count = len(f.keys())
        for index in range(count):
            name = f"episode_{index}"
            if name not in f:
                raise PreprocessError(f"{main_file}: missing group {name!r}")
            group = f[name]
            try:
                episode = EpisodeArrays(
                    observations=np.asarray(group["observations"][()], dtype=np.float32),
                    actions=np.asarray(group["actions"][()], dtype=np.float32),
                    rewards=np.asarray(group["rewards"][()], dtype=np.float32),
                    terminations=np.asarray(group["terminations"][()], dtype=bool),
                    truncations=np.asarray(group["truncations"][()], dtype=bool),
                )
            except (KeyError, OSError) as error:
                raise PreprocessError(f"{main_file}: {name} is unreadable ({error})") from None
            steps = episode.rewards.shape[0]
            if episode.observations.shape[0] != steps + 1 or episode.actions.shape[0] != steps:
                raise PreprocessError(
                    f"{main_file}: {name} has {episode.observations.shape[0]} observations and "
                    f"{episode.actions.shape[0]} actions for {steps} rewards (expected T+1, T, T)"
                )
            for key in ("observations", "actions", "rewards"):
                if not np.isfinite(getattr(episode, key)).all():
                    raise PreprocessError(f"{main_file}: {name}/{key} holds NaN or inf values")
            yield episode


@dataclass
class _ChunkWriter:
    file: h5py.File
    obs_dim: int
    act_dim: int
    chunk_rows: int
    compression: str | None
    rows: int = 0
    pending: dict[str, list[np.ndarray]] = field(default_factory=dict)
    pending_rows: int = 0

    def __post_init__(self) -> None:
        specs = {
            "observations": ((self.obs_dim,), np.float32),
            "actions": ((self.act_dim,), np.float32),
            "rewards": ((), np.float32),
            "next_observations": ((self.obs_dim,), np.float32),
            "terminals": ((), bool),
            "timeouts": ((), bool),
            "episode_ids": ((), np.int64),
        }
        for key, (shape, dtype) in specs.items():
            chunk = (min(self.chunk_rows, 65_536), *shape)
            self.file.create_dataset(
                key,
                shape=(0, *shape),
                maxshape=(None, *shape),
                dtype=dtype,
                chunks=chunk,
                compression=self.compression,
            )
            self.pending[key] = []

    def add(self, arrays: dict[str, np.ndarray]) -> None:
        for key, value in arrays.items():
            self.pending[key].append(value)
        self.pending_rows += arrays["rewards"].shape[0]
        if self.pending_rows >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        if self.pending_rows == 0:
            return
        start, end = self.rows, self.rows + self.pending_rows
        for key, parts in self.pending.items():
            dataset = self.file[key]
            dataset.resize(end, axis=0)
            dataset[start:end] = np.concatenate(parts)
            parts.clear()
        self.rows, self.pending_rows = end, 0


def preprocess(
    sources: list[tuple[str, Path]],
    output: Path,
    config: PreprocessConfig,
    env_id: str | None = None,
) -> dict[str, float]:
    """Convert Minari datasets (id, dataset folder) into `output`; returns summary statistics.
    With `env_id`, every dataset must have been recorded in that environment."""
    metadatas = []
    for dataset_id, folder in sources:
        meta_file = folder / "data" / "metadata.json"
        try:
            metadatas.append(check_metadata(meta_file, json.loads(meta_file.read_text()), env_id))
        except FileNotFoundError:
            raise PreprocessError(
                f"{meta_file}: dataset {dataset_id!r} not found (run the collect stage or dvc pull)"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise PreprocessError(f"{meta_file}: invalid JSON ({error})") from None
    env_ids = {json.loads(m["env_spec"])["id"] for m in metadatas if "env_spec" in m}
    if len(env_ids) != 1:
        raise PreprocessError(f"datasets {[s[0] for s in sources]} mix environments {env_ids}")
    refs = {
        (m.get("ref_min_score"), m.get("ref_max_score"), m.get("ref_score_source"))
        for m in metadatas
    }
    if len(refs) != 1:
        raise PreprocessError(f"datasets {[s[0] for s in sources]} disagree on reference scores")
    ref_min, ref_max, ref_source = refs.pop()
    action_space = json.loads(metadatas[0]["action_space"])
    obs_space = json.loads(metadatas[0]["observation_space"])
    obs_dim, act_dim = int(obs_space["shape"][0]), int(action_space["shape"][0])

    obs_stats = RunningStats()
    returns: list[float] = []
    compression = None if config.compression == "none" else config.compression
    with atomic_path(output, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        writer = _ChunkWriter(f, obs_dim, act_dim, config.chunk_rows, compression)
        for _, folder in sources:
            for episode in read_episodes(folder / "data" / "main_data.hdf5"):
                steps = episode.rewards.shape[0]
                if episode.observations.shape[1] != obs_dim or episode.actions.shape[1] != act_dim:
                    raise PreprocessError(
                        f"{folder}: episode shapes {episode.observations.shape[1:]}, "
                        f"{episode.actions.shape[1:]} differ from the spaces ({obs_dim},), ({act_dim},)"
                    )
                obs = episode.observations[:-1]
                obs_stats.update(obs)
                returns.append(float(episode.rewards.sum(dtype=np.float64)))
                writer.add(
                    {
                        "observations": obs,
                        "actions": episode.actions,
                        "rewards": episode.rewards,
                        "next_observations": episode.observations[1:],
                        "terminals": episode.terminations,
                        "timeouts": episode.truncations & ~episode.terminations,
                        "episode_ids": np.full(steps, len(returns) - 1, dtype=np.int64),
                    }
                )
        writer.flush()
        if writer.rows == 0:
            raise PreprocessError(f"datasets {[s[0] for s in sources]} hold no transitions")
        reward_scale = config.reward_scale
        if config.reward_normalization == "return_range":
            span = max(returns) - min(returns)
            reward_scale *= 1000.0 / span if span > 0 else 1.0
        std = np.maximum(obs_stats.std, 1e-3)  # constant features would divide by ~0
        assert obs_stats.mean is not None
        f.attrs.update(
            {
                "schema_version": SCHEMA_VERSION,
                "env_id": env_ids.pop(),
                "dataset_ids": json.dumps([s[0] for s in sources]),
                "ref_min_score": np.nan if ref_min is None else float(ref_min),
                "ref_max_score": np.nan if ref_max is None else float(ref_max),
                "ref_score_source": str(ref_source or "none"),
                "action_low": np.asarray(action_space["low"], dtype=np.float32),
                "action_high": np.asarray(action_space["high"], dtype=np.float32),
                "obs_mean": obs_stats.mean.astype(np.float32),
                "obs_std": std.astype(np.float32),
                "normalize_observations": config.normalize_observations,
                "reward_scale": reward_scale,
                "reward_shift": config.reward_shift,
                "num_episodes": len(returns),
                "return_mean": float(np.mean(returns)),
                "return_std": float(np.std(returns)),
                "return_min": float(np.min(returns)),
                "return_max": float(np.max(returns)),
            }
        )
        rows = writer.rows
    return {
        "transitions": float(rows),
        "episodes": float(len(returns)),
        "return_mean": float(np.mean(returns)),
        "reward_scale": reward_scale,
    }
