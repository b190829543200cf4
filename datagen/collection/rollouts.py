"""Vectorised rollouts into whole episodes, with a seed per episode so any episode can be replayed.

Episode k of a dataset is reset with seed `base_seed + k`; episodes are numbered in the order they
finish, which a synchronous vector env makes deterministic. The last episode is cut where the step
budget ends and marked truncated (never terminal), as D4RL's timeouts are.

An episode keeps the env's own values: Box actions float32 (T, k), Discrete ones int64 (T,); a
Dict observation as one dict per step, stacked per key by `Episode.arrays`, as Minari stores it;
observations float32, except uint8 ones (images), which stay uint8.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from core.envs import make_vec_env

BatchPolicy = Callable[[Any], np.ndarray]
Observations = np.ndarray | dict[str, np.ndarray]  # (T + 1, d), or per key for a Dict space


def stack_observations(observations: list[Any]) -> Observations:
    """An episode's observations as arrays: one (T + 1, ...), or one per Dict key."""
    if observations and isinstance(observations[0], Mapping):
        return {key: _stack([o[key] for o in observations]) for key in observations[0]}
    return _stack(observations)


def _stack(rows: list[Any]) -> np.ndarray:
    """float32, but uint8 stays uint8: an image is stored as the bytes the env gave."""
    array = np.asarray(rows)
    return array if array.dtype == np.uint8 else array.astype(np.float32)


def stack_actions(actions: list[np.ndarray]) -> np.ndarray:
    """Box actions as float32 (T, k); Discrete ones (integers) as int64 (T,)."""
    array = np.asarray(actions)
    return array.astype(np.int64 if np.issubdtype(array.dtype, np.integer) else np.float32)


def row(batch: Any, i: int) -> Any:
    """Observation i of a vector env's batch (an array, or a dict of arrays)."""
    if isinstance(batch, Mapping):
        return {key: np.array(value[i]) for key, value in batch.items()}
    return batch[i]


def set_row(batch: Any, i: int, value: Any) -> None:
    if isinstance(batch, Mapping):
        for key in batch:
            batch[key][i] = value[key]
    else:
        batch[i] = value


@dataclass
class Episode:
    seed: int | None  # reset seed; None when unknown (imported D4RL data)
    observations: list[Any] = field(default_factory=list)  # T + 1 arrays (or dicts of arrays)
    actions: list[np.ndarray] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    terminations: list[bool] = field(default_factory=list)
    truncations: list[bool] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rewards)

    def arrays(self) -> dict[str, Any]:
        return {
            "observations": stack_observations(self.observations),
            "actions": stack_actions(self.actions),
            "rewards": np.asarray(self.rewards, dtype=np.float64),
            "terminations": np.asarray(self.terminations, dtype=bool),
            "truncations": np.asarray(self.truncations, dtype=bool),
        }

    def cut(self, steps: int) -> Episode:
        """The first `steps` steps; a cut before the end is a truncation, never a terminal."""
        if steps >= len(self):
            return self
        return Episode(
            seed=self.seed,
            observations=self.observations[: steps + 1],
            actions=self.actions[:steps],
            rewards=self.rewards[:steps],
            terminations=[*self.terminations[: steps - 1], False],
            truncations=[*self.truncations[: steps - 1], True],
        )

    @property
    def total_return(self) -> float:
        return float(np.sum(self.rewards))


def rollout_episodes(
    env_id: str, policy: BatchPolicy, total_steps: int, base_seed: int, num_envs: int = 8
) -> Iterator[Episode]:
    """Yield finished episodes until exactly `total_steps` steps have been yielded."""
    envs = make_vec_env(
        env_id,
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.DISABLED},
    )
    next_seed = base_seed
    seeds = list(range(next_seed, next_seed + num_envs))
    next_seed += num_envs
    obs, _ = envs.reset(seed=seeds)  # type: ignore[arg-type]
    running = [Episode(seed=s, observations=[row(obs, i)]) for i, s in enumerate(seeds)]
    emitted = 0
    try:
        while True:
            actions = policy(obs)
            obs, rewards, terminated, truncated, _ = envs.step(actions)
            finished = np.zeros(num_envs, dtype=bool)
            for i, episode in enumerate(running):
                episode.actions.append(np.asarray(actions[i]))
                episode.rewards.append(float(rewards[i]))
                episode.terminations.append(bool(terminated[i]))
                episode.truncations.append(bool(truncated[i]) and not bool(terminated[i]))
                episode.observations.append(row(obs, i))
                budget_left = total_steps - emitted
                if terminated[i] or truncated[i] or len(episode) >= budget_left:
                    episode = episode.cut(budget_left)
                    if len(episode) == budget_left and not episode.terminations[-1]:
                        episode.truncations[-1] = True
                    emitted += len(episode)
                    yield episode
                    if emitted >= total_steps:
                        return
                    finished[i] = True
            if finished.any():
                new_seeds = [next_seed + k for k in range(int(finished.sum()))]
                next_seed += len(new_seeds)
                seed_list: list[int | None] = [None] * num_envs
                for i, s in zip(map(int, np.flatnonzero(finished)), new_seeds, strict=True):
                    seed_list[i] = s
                reset_obs, _ = envs.reset(seed=seed_list, options={"reset_mask": finished})  # type: ignore[arg-type]
                for i in map(int, np.flatnonzero(finished)):
                    set_row(obs, i, row(reset_obs, i))
                    running[i] = Episode(
                        seed=int(seed_list[i] or 0), observations=[row(reset_obs, i)]
                    )
    finally:
        envs.close()
