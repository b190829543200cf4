"""Shared fixtures: tiny datasets built in seconds, no network, wandb off unless a test turns it on."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import pytest
from hypothesis import settings

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("MUJOCO_GL", "egl")
# Each dvc command would otherwise spawn an analytics daemon that tries the network and leaves
# its report file in /tmp.
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

from datagen.behavior.policies import RandomPolicy
from datagen.collection.minari_writer import DatasetInfo, write_dataset
from datagen.collection.reference import d4rl_reference
from datagen.collection.rollouts import rollout_episodes
from datagen.preprocessing.config import PreprocessConfig
from datagen.preprocessing.preprocess import preprocess

# Property tests draw the same examples on every CI run (CI=true): a red CI then reproduces, and a
# green one does not depend on the draw. Locally each run draws anew to find new failures, and the
# failing example is printed to replay with @reproduce_failure. HYPOTHESIS_PROFILE picks one.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or (
    "ci" if os.environ.get("CI") else "dev"
)
settings.load_profile(HYPOTHESIS_PROFILE)

ENV_ID = "Hopper-v5"


def make_random_dataset(
    root: Path,
    dataset_id: str = "hopper/random-v0",
    steps: int = 600,
    seed: int = 0,
    num_envs: int = 4,
) -> Path:
    """A small Minari dataset of uniform-random Hopper episodes under `root`."""
    space = gym.make(ENV_ID).action_space
    assert isinstance(space, gym.spaces.Box)
    info = DatasetInfo(
        dataset_id=dataset_id,
        env_id=ENV_ID,
        algorithm_name="uniform random",
        description="test dataset",
        code_permalink="tests",
    )
    write_dataset(
        root,
        info,
        rollout_episodes(ENV_ID, RandomPolicy(space, seed), steps, seed, num_envs),
        d4rl_reference(ENV_ID),
    )
    return root / dataset_id


@pytest.fixture(scope="session")
def random_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    return make_random_dataset(root)


@pytest.fixture(scope="session")
def random_transitions(tmp_path_factory: pytest.TempPathFactory, random_dataset: Path) -> Path:
    out = tmp_path_factory.mktemp("transitions") / "random.h5"
    preprocess([("hopper/random-v0", random_dataset)], out, PreprocessConfig(chunk_rows=1000))
    return out
