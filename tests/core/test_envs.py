"""core.envs: ids of packages that register on import (gymnasium-robotics, minigrid) are made
like gymnasium's own wherever a stage makes an environment."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.envs import env_registered, make_env, make_vec_env


@pytest.mark.parametrize("env_id", ["PointMaze_UMaze-v3", "MiniGrid-Empty-5x5-v0"])
def test_package_ids_registered_on_first_use(env_id: str) -> None:
    # A fresh interpreter: nothing has imported the env's package yet.
    code = (
        "import gymnasium as gym; from core.envs import env_registered; "
        f"assert {env_id!r} not in gym.registry; assert env_registered({env_id!r})"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_make_env_and_vec_env_of_a_registered_package() -> None:
    env = make_env("PointMaze_UMaze-v3")
    try:
        observation, _ = env.reset(seed=0)
        assert set(observation) == {"observation", "achieved_goal", "desired_goal"}
    finally:
        env.close()
    envs = make_vec_env("PointMaze_UMaze-v3", num_envs=2, vectorization_mode="sync")
    try:
        observations, _ = envs.reset(seed=0)
        assert observations["observation"].shape == (2, 4)
    finally:
        envs.close()


def test_unknown_id_is_not_registered() -> None:
    assert not env_registered("PointMaze_Nowhere-v9")
    assert not env_registered("NoSuchEnv-v0")
