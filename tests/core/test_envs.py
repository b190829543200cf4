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


def test_minigrid_observes_its_image_alone_and_reports_success_by_reward() -> None:
    """MiniGrid's Dict is cut to `image` (its `mission` string cannot be stored) in single and
    vector envs, and reaching the goal (terminated, reward > 0) is `info["success"]`."""
    import numpy as np

    env = make_env("MiniGrid-Empty-5x5-v0")
    vec = make_vec_env("MiniGrid-Empty-5x5-v0", num_envs=2, vectorization_mode="sync")
    try:
        observation, _ = env.reset(seed=0)
        assert set(observation) == {"image"} and observation["image"].dtype == np.uint8
        vec.reset(seed=0)
        # Empty-5x5 starts at (1, 1) facing the goal's row: forward, forward, right, forward x2
        for action in (2, 2, 1, 2):
            _, _, _, _, info = env.step(action)
            assert info["success"] is False
            vec.step(np.array([action, action]))
        _, reward, terminated, _, info = env.step(2)
        assert terminated and float(reward) > 0 and info["success"] is True
        _, _, _, _, infos = vec.step(np.array([2, 0]))
        assert infos["success"].tolist() == [True, False]
    finally:
        env.close()
        vec.close()
