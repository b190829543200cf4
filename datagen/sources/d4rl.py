"""D4RL-format HDF5 (flat arrays) -> episodes -> a Minari dataset.

A D4RL file stores N rows: `observations`, `actions`, `rewards`, `terminals`, `timeouts`, and
sometimes `next_observations` and `infos/*`. An episode ends at a row whose terminal or timeout flag
is set (terminal wins when both are); rows after the last flag form a final, truncated episode.

Minari stores T + 1 observations per episode, so each episode needs the observation after its last
step. With `next_observations` that is `next_observations[last]`. Without it the next row belongs
to the next episode, so:
- a terminated episode repeats its last observation (the terminal flag stops bootstrapping, so
  the value is never used);
- a timed-out (or trailing) episode drops its last step, whose outcome state is unknown, and the
  step before becomes the truncation, as D4RL's own `qlearning_dataset` does. A one-step episode
  then has nothing left and is skipped.
`infos/*` arrays are checked for length but not carried over (Minari wants T + 1 infos per
episode, D4RL stores T); the dataset's provenance lists the keys left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np

from core.envs import make_env
from datagen.collection.config import env_family
from datagen.collection.minari_writer import DatasetInfo, write_dataset
from datagen.collection.reference import D4RL_REFERENCE_SCORES, ReferenceScores, d4rl_reference
from datagen.collection.rollouts import Episode
from datagen.sources.errors import SourceError
from datagen.sources.http import sha256_of
from transitions.spaces import action_layout, describe, observation_layout, space_dict

REQUIRED = ("observations", "actions", "rewards", "terminals", "timeouts")


@dataclass(frozen=True)
class D4RLLayout:
    rows: int
    obs_dim: int
    act_dim: int
    has_next_observations: bool
    info_keys: tuple[str, ...]
    ends: np.ndarray  # index of the last row of each episode
    terminal_ends: np.ndarray  # bool per episode: ended by a terminal


def read_layout(path: Path) -> D4RLLayout:
    """Check the file's arrays and find the episode boundaries."""
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise SourceError(f"{path}: not a readable HDF5 file ({error})") from None
    with f:
        missing = [key for key in REQUIRED if key not in f]
        if missing:
            raise SourceError(
                f"{path}: not a D4RL file, missing {missing} (expected {', '.join(REQUIRED)})"
            )
        rows = f["rewards"].shape[0]
        keys = [*REQUIRED, *(["next_observations"] if "next_observations" in f else [])]
        info_keys = tuple(f"infos/{k}" for k in f["infos"]) if "infos" in f else ()
        for key in (*keys, *info_keys):
            if f[key].shape[0] != rows:
                raise SourceError(f"{path}: {key} has {f[key].shape[0]} rows, rewards has {rows}")
        if rows == 0:
            raise SourceError(f"{path}: the file holds no transitions")
        terminals = np.asarray(f["terminals"][()], dtype=bool).reshape(rows)
        timeouts = np.asarray(f["timeouts"][()], dtype=bool).reshape(rows)
        obs_shape, act_shape = f["observations"].shape[1:], f["actions"].shape[1:]
        if len(obs_shape) != 1 or len(act_shape) != 1:
            raise SourceError(
                f"{path}: observations {obs_shape} and actions {act_shape} must be flat vectors"
            )
    ended = terminals | timeouts
    ended[-1] = True  # trailing rows form a truncated episode
    ends = np.flatnonzero(ended)
    return D4RLLayout(
        rows=rows,
        obs_dim=int(obs_shape[0]),
        act_dim=int(act_shape[0]),
        has_next_observations="next_observations" in keys,
        info_keys=info_keys,
        ends=ends,
        terminal_ends=terminals[ends],
    )


def check_spaces(path: Path, layout: D4RLLayout, env_id: str) -> None:
    try:
        env = make_env(env_id)
    except gym.error.Error as error:
        raise SourceError(
            f"{path}: env {env_id!r} is not a gymnasium environment ({error})"
        ) from None
    try:
        observations = observation_layout(env.observation_space, f"{env_id} observation space")
        actions = action_layout(env.action_space, f"{env_id} action space")
    finally:
        env.close()
    if actions.discrete or observations.keys:
        raise SourceError(
            f"{path}: a D4RL file holds flat Box observations and actions, but {env_id} has "
            f"{describe(space_dict(env.observation_space))} observations and "
            f"{describe(space_dict(env.action_space))} actions"
        )
    obs_shape, act_shape = (observations.obs_dim,), (actions.act_dim,)
    if obs_shape != (layout.obs_dim,) or act_shape != (layout.act_dim,):
        raise SourceError(
            f"{path}: observations ({layout.obs_dim},) and actions ({layout.act_dim},) do not fit "
            f"{env_id} ({obs_shape}, {act_shape}); set the entry's env to the task the file records"
        )


def read_episodes(path: Path, layout: D4RLLayout) -> Iterator[Episode]:
    """Yield the file's episodes in order, one slice of each array at a time."""
    with h5py.File(path, "r") as f:
        obs, act, rew = f["observations"], f["actions"], f["rewards"]
        nxt = f["next_observations"] if layout.has_next_observations else None
        start = 0
        for end, terminal in zip(layout.ends.tolist(), layout.terminal_ends.tolist(), strict=True):
            stop = end + 1
            observations = np.asarray(obs[start:stop], dtype=np.float32)
            actions = np.asarray(act[start:stop], dtype=np.float32)
            rewards = np.asarray(rew[start:stop], dtype=np.float64).reshape(-1)
            start = stop
            if nxt is not None:
                last = np.asarray(nxt[end], dtype=np.float32)
            elif terminal:
                last = observations[-1]
            else:  # the outcome of the final step is unknown: drop that step
                if len(rewards) == 1:
                    continue
                last = observations[-1]
                observations, actions, rewards = observations[:-1], actions[:-1], rewards[:-1]
            steps = len(rewards)
            yield Episode(
                seed=None,
                observations=[*observations, last],
                actions=list(actions),
                rewards=rewards.tolist(),
                terminations=[False] * (steps - 1) + [bool(terminal)],
                truncations=[False] * (steps - 1) + [not terminal],
            )


def import_d4rl(
    path: Path,
    root: Path,
    dataset_id: str,
    env_id: str,
    sha256: str | None = None,
    origin: str | None = None,
) -> dict[str, float | int | bool | None]:
    """Convert the D4RL file at `path` into the Minari dataset `root/dataset_id`."""
    if not path.is_file():
        raise SourceError(f"{path}: file not found; fix the entry's path or use url")
    if sha256 is not None and (actual := sha256_of(path)) != sha256.lower():
        raise SourceError(f"{path}: sha256 {actual} differs from the expected {sha256}")
    layout = read_layout(path)
    check_spaces(path, layout, env_id)
    reference: ReferenceScores | None = (
        d4rl_reference(env_id) if env_family(env_id) in D4RL_REFERENCE_SCORES else None
    )
    info = DatasetInfo(
        dataset_id=dataset_id,
        env_id=env_id,
        algorithm_name="unknown (imported from a D4RL file)",
        description=f"{env_id} data imported from the D4RL-format file {origin or path}.",
        code_permalink=origin or str(path),
        provenance={
            "source": "d4rl",
            "origin": origin or str(path),
            "rows": layout.rows,
            "next_observations": layout.has_next_observations,
            "infos_not_imported": list(layout.info_keys),
        },
    )
    written = write_dataset(root, info, read_episodes(path, layout), reference)
    return {
        "rows": layout.rows,
        "episodes": written.episodes,
        "steps": written.steps,
        "ref_min_score": None if reference is None else reference.min_score,
        "ref_max_score": None if reference is None else reference.max_score,
    }
