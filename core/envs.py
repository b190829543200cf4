"""Making environments: the one place that knows which package registers which gymnasium ids.

Gymnasium registers its own environments on import; PointMaze/AntMaze (gymnasium-robotics) and
MiniGrid/BabyAI (minigrid) register theirs only when their package is imported. Every stage makes
its environments through `make_env` / `make_vec_env` (or asks `env_registered`), so an id of
those families works wherever gymnasium's own do, and their packages are imported only when one
is asked for.

It is also where a family's observation is cut down to what the pipeline can store and learn from
(`OBSERVATION_KEYS`): MiniGrid and BabyAI give a Dict of `image` (uint8 (7, 7, 3), the agent's
egocentric view), `direction` and `mission`, a string no Minari dataset or network holds; every
stage sees their observation as the Dict of `image` alone, the same in behaviour training,
collection, the datasets' recorded space and evaluation.

And where success is read from the reward for a family whose envs report none in `info`
(`SUCCESS_BY_REWARD`): MiniGrid and BabyAI reward only reaching the goal (1 - 0.9 t / max_steps),
so an episode that terminates with a positive reward succeeded; `info["success"]` says so at every
step, where evaluation (offline_rl/evaluation.py) reads success for every env.
"""

from __future__ import annotations

import importlib
from typing import Any, SupportsFloat

import gymnasium as gym
from gymnasium.wrappers import FilterObservation

# Id prefix -> the package whose import registers it.
ENV_PACKAGES: dict[str, str] = {
    "PointMaze_": "gymnasium_robotics",
    "AntMaze_": "gymnasium_robotics",
    "AdroitHand": "gymnasium_robotics",
    "FrankaKitchen": "gymnasium_robotics",
    "MiniGrid-": "minigrid",
    "BabyAI-": "minigrid",
}


# Id prefix -> the Dict keys every stage keeps of its observations (gymnasium's FilterObservation).
# MiniGrid's `direction` is left out with `mission`: its image is already seen from the agent.
OBSERVATION_KEYS: dict[str, tuple[str, ...]] = {
    "MiniGrid-": ("image",),
    "BabyAI-": ("image",),
}


# Id prefixes of the envs whose success is "terminated with a positive reward" (RewardSuccess).
SUCCESS_BY_REWARD = ("MiniGrid-", "BabyAI-")


class RewardSuccess(gym.Wrapper[Any, Any, Any, Any]):
    """Adds `info["success"]`: the step terminated the episode with a positive reward."""

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "success": bool(terminated and float(reward) > 0)}
        return obs, reward, terminated, truncated, info


def observation_keys(env_id: str) -> tuple[str, ...] | None:
    """The keys `env_id`'s observations are cut down to, None to keep them whole."""
    return next((k for prefix, k in OBSERVATION_KEYS.items() if env_id.startswith(prefix)), None)


def _wrapped(env: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
    """The family's observation keys and success rule on top of the env gymnasium made."""
    env_id = env.spec.id if env.spec is not None else ""
    keys = observation_keys(env_id)
    env = env if keys is None else FilterObservation(env, list(keys))
    return RewardSuccess(env) if env_id.startswith(SUCCESS_BY_REWARD) else env


def _adjusted(env_id: str) -> bool:
    return observation_keys(env_id) is not None or env_id.startswith(SUCCESS_BY_REWARD)


def register(env_id: str) -> None:
    """Import the package that registers `env_id` when gymnasium does not know it yet."""
    if env_id in gym.registry:
        return
    for prefix, package in ENV_PACKAGES.items():
        if env_id.startswith(prefix):
            importlib.import_module(package)  # registers its ids on import
            return


def env_registered(env_id: str) -> bool:
    register(env_id)
    return env_id in gym.registry


def make_env(env_id: str, **kwargs: Any) -> gym.Env[Any, Any]:
    register(env_id)
    return _wrapped(gym.make(env_id, **kwargs))


def make_vec_env(env_id: str, **kwargs: Any) -> gym.vector.VectorEnv[Any, Any, Any]:
    register(env_id)
    if _adjusted(env_id):
        kwargs["wrappers"] = [*kwargs.get("wrappers", ()), _wrapped]
    return gym.make_vec(env_id, **kwargs)
