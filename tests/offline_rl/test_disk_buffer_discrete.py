"""Disk storage gives memory storage's batches, bit for bit, on a file of Discrete actions (int64
indices memory-mapped, float indices in the batch, left unscaled like the loaded rows)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from datagen.preprocessing.config import PreprocessConfig
from datagen.preprocessing.preprocess import preprocess
from offline_rl.buffer import ReplayBuffer
from offline_rl.disk_buffer import DiskReplayBuffer
from tests.datagen.minari_spaces import write_rollouts
from transitions.loader import load_transitions

FIELDS = ("observations", "actions", "rewards", "next_observations", "dones", "next_actions")


@pytest.fixture(scope="module")
def discrete(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("minari")
    folder = write_rollouts(root, "cartpole/random-v0", "CartPole-v1", episodes=12, seed=4)
    out = root / "cartpole.h5"
    config = PreprocessConfig(validation_fraction=0.25, reward_scale=2.0, reward_shift=-1.0)
    preprocess([("cartpole/random-v0", folder)], out, config)
    return out


@pytest.mark.parametrize("seeds", [(0,), (3, 1)])
def test_disk_batches_equal_memory_batches_for_discrete_actions(
    discrete: Path, seeds: tuple[int, ...]
) -> None:
    memory = ReplayBuffer.from_transitions(load_transitions(discrete, split="train"), seeds)
    with DiskReplayBuffer(discrete, seeds=seeds, prefetch=2) as disk:
        assert disk.size == memory.size
        for step in range(6):
            ours, theirs = disk.sample(32), memory.sample(32)
            for name in FIELDS:
                assert torch.equal(getattr(ours, name), getattr(theirs, name)), (name, step)
            assert ours.actions.shape == (len(seeds), 32)
            assert set(ours.actions.unique().tolist()) <= {0.0, 1.0}
