"""Making environments: the one place that knows which package registers which gymnasium ids.

Gymnasium registers its own environments on import; PointMaze/AntMaze (gymnasium-robotics) and
MiniGrid/BabyAI (minigrid) register theirs only when their package is imported. Every stage makes
its environments through `make_env` / `make_vec_env` (or asks `env_registered`), so an id of those families
works wherever gymnasium's own do, and their packages are imported only when one is asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

# Id prefix -> the package whose import registers it.
ENV_PACKAGES: dict[str, str] = {
    "PointMaze_": "gymnasium_robotics",
    "AntMaze_": "gymnasium_robotics",
    "AdroitHand": "gymnasium_robotics",
    "FrankaKitchen": "gymnasium_robotics",
    "MiniGrid-": "minigrid",
    "BabyAI-": "minigrid",
}


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
    return gym.make(env_id, **kwargs)


def make_vec_env(env_id: str, **kwargs: Any) -> gym.vector.VectorEnv[Any, Any, Any]:
    register(env_id)
    return gym.make_vec(env_id, **kwargs)
