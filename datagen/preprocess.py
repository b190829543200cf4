"""Minari datasets -> one flat transitions file (see offline_rl.transitions for the layout).

Streaming: episodes are read one at a time straight from each dataset's HDF5 file into blocks of at
most min(`chunk_rows`, 65536) rows (`datagen.transition_blocks`; by `workers` forked processes when
there are several), which are appended in episode order to a fixed write buffer of `chunk_rows` rows
that is flushed whenever it fills. Peak memory is therefore set by `chunk_rows` and `workers` (plus
one episode's rewards and flags, a few bytes per step), never by the dataset. Statistics
(observation mean/std by Chan's parallel merge, per-episode returns) are accumulated in the same
pass and stored as attributes; the output is the same whatever `workers` is, and its arrays the
same whatever `chunk_rows` is (statistics agree to float rounding).

Arrays derived here:
- `returns_to_go`: for step t of an episode of T steps, sum_{k=t}^{T-1} discount^(k-t) r_k of the
  raw rewards (`return_to_go_discount`; 1.0, undiscounted, is what Decision Transformer uses). It
  stops at the episode's last step whether the episode terminated or was truncated: nothing is
  bootstrapped past a timeout. `load_transitions` applies the reward transform to it exactly.
- `validation`: True on every step of the episodes held out for validation. The split is by
  episode, round(validation_fraction * episodes) of them, drawn by `numpy.random.default_rng(seed)`
  over all episodes of all sources, so it is deterministic under the seed. Observation and return
  statistics (hence normalisation and return-range reward scaling) come from training episodes only.

Where this differs from D4RL's `qlearning_dataset`:
- D4RL pairs row i with row i+1 of the flat arrays and drops the final step of every timed-out
  episode (it has no next observation there). Minari stores T+1 observations per episode, so we take
  next_observations from the episode's own sequence: no transition crosses episodes and the final
  step of a truncated episode is kept, marked `timeouts=True, terminals=False`.
- D4RL's `terminals` can be set together with `timeouts`; here a step is a timeout only when it was
  truncated and not terminal, so the two flags never overlap.
- D4RL returns everything in memory in float32 and leaves transforms to each algorithm; we write raw
  values to disk and record the transforms (normalisation, reward scale/shift) as attributes that the
  loader applies on the training device.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import h5py
import minari
import numpy as np
from pydantic import Field, field_validator

from core.atomic import atomic_path
from core.config import StrictModel
from datagen.minari_reader import PreprocessError as PreprocessError
from datagen.minari_reader import count_episodes
from datagen.transition_blocks import (
    ParallelRows,
    Piece,
    array_specs,
    build_inline,
    can_fork,
    jobs_for,
)
from datagen.transition_blocks import discounted_returns_to_go as discounted_returns_to_go
from offline_rl.transitions_schema import SCHEMA_VERSION

# A part is a generated kind ("medium") or an imported id ("d4rl/hopper/medium-v0").
_PART = r"[a-z0-9_\-]+(/[a-z0-9_\-.]+)*"
DATASET_NAME = re.compile(rf"{_PART}(\+{_PART})*")


class PreprocessConfig(StrictModel):
    # One transitions file per entry; "medium+expert" concatenates datasets into one file.
    datasets: tuple[str, ...] = Field(default=("medium",), min_length=1)
    normalize_observations: bool = True
    # "return_range": rewards * 1000 / (max episode return - min episode return), as IQL does.
    reward_normalization: Literal["none", "return_range"] = "none"
    reward_scale: float = Field(default=1.0, gt=0)
    reward_shift: float = 0.0
    return_to_go_discount: float = Field(default=1.0, gt=0, le=1)
    validation_fraction: float = Field(default=0.0, ge=0, lt=1)
    chunk_rows: int = Field(default=100_000, ge=1)
    compression: Literal["none", "gzip", "lzf"] = "none"
    # Processes reading episodes while this one writes; 1 reads in-process. Never changes the file.
    workers: int = Field(default=2, ge=1)

    @field_validator("datasets")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not DATASET_NAME.fullmatch(name):
                raise ValueError(
                    f"dataset name {name!r}: use lower-case kinds such as 'medium', imported "
                    "ids such as 'd4rl/hopper/medium-v0', or 'medium+expert' to concatenate "
                    "several into one file"
                )
        if len(set(value)) != len(value):
            raise ValueError(f"dataset names repeat: {list(value)}")
        return value


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


class ChunkWriter:
    """Fixed buffer of `chunk_rows` rows per array, appended to the file each time it fills."""

    def __init__(
        self, file: h5py.File, obs_dim: int, act_dim: int, chunk_rows: int, compression: str | None
    ) -> None:
        self.file, self.chunk_rows = file, chunk_rows
        self.rows, self.fill = 0, 0
        self.obs_stats = RunningStats()
        self.buffers: dict[str, np.ndarray] = {}
        for key, (shape, dtype) in array_specs(obs_dim, act_dim).items():
            file.create_dataset(
                key,
                shape=(0, *shape),
                maxshape=(None, *shape),
                dtype=dtype,
                chunks=(min(chunk_rows, 65_536), *shape),
                compression=compression,
            )
            self.buffers[key] = np.empty((chunk_rows, *shape), dtype=dtype)

    def add(self, arrays: dict[str, np.ndarray]) -> None:
        """Copy rows into the buffer, flushing as often as it fills (episodes may span chunks)."""
        n, done = arrays["rewards"].shape[0], 0
        while done < n:
            take = min(n - done, self.chunk_rows - self.fill)
            for key, value in arrays.items():
                self.buffers[key][self.fill : self.fill + take] = value[done : done + take]
            self.fill += take
            done += take
            if self.fill == self.chunk_rows:
                self.flush()

    def flush(self) -> None:
        if self.fill == 0:
            return
        start, end = self.rows, self.rows + self.fill
        observations = self.buffers["observations"][: self.fill]
        held_out = self.buffers["validation"][: self.fill]
        self.obs_stats.update(observations[~held_out] if held_out.any() else observations)
        for key, buffer in self.buffers.items():
            dataset = self.file[key]
            dataset.resize(end, axis=0)
            dataset[start:end] = buffer[: self.fill]
        self.rows, self.fill = end, 0


def _read_metadata(dataset_id: str, folder: Path, env_id: str | None) -> dict[str, Any]:
    meta_file = folder / "data" / "metadata.json"
    try:
        return check_metadata(meta_file, json.loads(meta_file.read_text()), env_id)
    except FileNotFoundError:
        raise PreprocessError(
            f"{meta_file}: dataset {dataset_id!r} not found (run the collect or download stage, "
            "or dvc pull)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PreprocessError(f"{meta_file}: invalid JSON ({error})") from None


def validation_episodes(total: int, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask over episodes: round(fraction * total) held out, drawn from the seed."""
    held_out = np.zeros(total, dtype=bool)
    count = round(fraction * total)
    if fraction > 0 and not 0 < count < total:
        raise PreprocessError(
            f"preprocess.validation_fraction = {fraction} holds out {count} of {total} episodes; "
            "choose a fraction that leaves at least one episode on each side"
        )
    held_out[np.random.default_rng(seed).choice(total, count, replace=False)] = True
    return held_out


def _block_rows(chunk_rows: int) -> int:
    """Rows per block a worker hands over (and per slice of a long episode it reads): small enough
    that the workers' shared blocks stay a few MB, whatever `chunk_rows` is."""
    return min(chunk_rows, 65_536)


def _create(tmp: Path) -> h5py.File:
    """A new HDF5 file at `tmp`, the empty placeholder `atomic_path` made, without truncating it:
    ext4 flushes a truncated-then-rewritten file synchronously on close (auto_da_alloc), which
    cost ~0.3 s of the stage's time per GB written (measured, 10M transitions); the kernel writes
    the data back in the background instead, as for any other file."""
    tmp.unlink()
    return h5py.File(tmp, "x")


def preprocess(
    sources: list[tuple[str, Path]],
    output: Path,
    config: PreprocessConfig,
    seed: int = 0,
    env_id: str | None = None,
) -> dict[str, float]:
    """Convert Minari datasets (id, dataset folder) into `output`; returns summary statistics.
    With `env_id`, every dataset must have been recorded in that environment."""
    names = [s[0] for s in sources]
    metadatas = [_read_metadata(dataset_id, folder, env_id) for dataset_id, folder in sources]
    env_ids = {json.loads(m["env_spec"])["id"] for m in metadatas if "env_spec" in m}
    if len(env_ids) != 1:
        raise PreprocessError(f"datasets {names} mix environments {env_ids}")
    refs = {
        (m.get("ref_min_score"), m.get("ref_max_score"), m.get("ref_score_source"))
        for m in metadatas
    }
    if len(refs) != 1:
        raise PreprocessError(f"datasets {names} disagree on reference scores")
    ref_min, ref_max, ref_source = refs.pop()
    action_space = json.loads(metadatas[0]["action_space"])
    obs_space = json.loads(metadatas[0]["observation_space"])
    obs_dim, act_dim = int(obs_space["shape"][0]), int(action_space["shape"][0])
    main_files = [folder / "data" / "main_data.hdf5" for _, folder in sources]
    files = [(main_file, count_episodes(main_file)) for main_file in main_files]
    held_out = validation_episodes(
        sum(count for _, count in files), config.validation_fraction, seed
    )

    train_returns: list[float] = []
    compression = None if config.compression == "none" else config.compression
    episode_id = 0
    jobs = jobs_for(files)
    common = (held_out, config.return_to_go_discount, obs_dim, act_dim)
    block_rows = _block_rows(config.chunk_rows)
    workers: contextlib.AbstractContextManager[ParallelRows | None] = contextlib.nullcontext()
    if config.workers > 1 and len(jobs) > 1 and can_fork():
        workers = ParallelRows(jobs, *common, config.workers, block_rows)
    # Workers are forked before the output file is opened.
    with (
        workers as parallel,
        atomic_path(output, suffix=".h5") as tmp,
        _create(tmp) as f,
    ):
        writer = ChunkWriter(f, obs_dim, act_dim, config.chunk_rows, compression)

        def append(piece: Piece) -> None:
            nonlocal episode_id
            if piece.columns:
                writer.add(piece.columns)
            for episode_return in piece.returns:
                if not held_out[episode_id]:
                    train_returns.append(episode_return)
                episode_id += 1

        def give(block: dict[str, np.ndarray], rows: int, returns: list[float], _: bool) -> None:
            append(Piece({key: array[:rows] for key, array in block.items()}, returns))

        if parallel is None:
            build_inline(jobs, *common, block_rows, give)
        else:
            for piece in parallel:
                append(piece)
        writer.flush()
        if writer.rows == 0:
            raise PreprocessError(f"datasets {names} hold no transitions")
        returns = np.asarray(train_returns)
        reward_scale = config.reward_scale
        if config.reward_normalization == "return_range":
            span = returns.max() - returns.min()
            reward_scale *= 1000.0 / span if span > 0 else 1.0
        stats = writer.obs_stats
        assert stats.mean is not None
        std = np.maximum(stats.std, 1e-3)  # constant features would divide by ~0
        f.attrs.update(
            {
                "schema_version": SCHEMA_VERSION,
                "env_id": env_ids.pop(),
                "dataset_ids": json.dumps(names),
                "ref_min_score": np.nan if ref_min is None else float(ref_min),
                "ref_max_score": np.nan if ref_max is None else float(ref_max),
                "ref_score_source": str(ref_source or "none"),
                "action_low": np.asarray(action_space["low"], dtype=np.float32),
                "action_high": np.asarray(action_space["high"], dtype=np.float32),
                "obs_mean": stats.mean.astype(np.float32),
                "obs_std": std.astype(np.float32),
                "normalize_observations": config.normalize_observations,
                "reward_scale": reward_scale,
                "reward_shift": config.reward_shift,
                "return_to_go_discount": config.return_to_go_discount,
                "validation_fraction": config.validation_fraction,
                "split_seed": seed,
                "num_episodes": episode_id,
                "num_validation_episodes": int(held_out.sum()),
                "return_mean": float(returns.mean()),
                "return_std": float(returns.std()),
                "return_min": float(returns.min()),
                "return_max": float(returns.max()),
            }
        )
        rows = writer.rows
    return {
        "transitions": float(rows),
        "episodes": float(episode_id),
        "validation_episodes": float(held_out.sum()),
        "return_mean": float(returns.mean()),
        "reward_scale": reward_scale,
    }
