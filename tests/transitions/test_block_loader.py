from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from datagen.preprocessing.config import PreprocessConfig
from datagen.preprocessing.preprocess import preprocess
from tests.datagen.synthetic import write_synthetic
from transitions.block_loader import BlockLoader
from transitions.loader import load_transitions


@pytest.fixture(scope="module")
def transitions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stream")
    dataset = write_synthetic(root / "datasets")
    out = root / "t.h5"
    config = PreprocessConfig(validation_fraction=0.3, reward_scale=2.0, reward_shift=-1.0)
    preprocess([("hopper/synthetic-v0", dataset)], out, config, seed=3)
    return out


def row_keys(observations: torch.Tensor) -> list[tuple[float, ...]]:
    """Observations are continuous random draws, so each row's observation identifies it."""
    return [tuple(row) for row in observations.numpy().tolist()]


@pytest.mark.parametrize(("block_rows", "batch_size"), [(100, 32), (1000, 256), (10_000, 7)])
def test_epoch_yields_every_training_row_once_with_its_values(
    transitions: Path, block_rows: int, batch_size: int
) -> None:
    expected = load_transitions(transitions, split="train")
    index = {key: i for i, key in enumerate(row_keys(expected.observations))}
    loader = BlockLoader(transitions, batch_size, block_rows=block_rows, split="train")
    seen: Counter[int] = Counter()
    for batch in loader.epoch():
        assert len(batch.rewards) <= batch_size
        rows = torch.tensor([index[key] for key in row_keys(batch.observations)])
        seen.update(rows.tolist())
        # same transforms as the in-memory load, row for row
        torch.testing.assert_close(batch.actions, expected.actions[rows])
        torch.testing.assert_close(batch.rewards, expected.rewards[rows])
        torch.testing.assert_close(batch.next_observations, expected.next_observations[rows])
        torch.testing.assert_close(batch.dones, expected.dones[rows])
    assert sorted(seen) == list(range(len(expected)))
    assert set(seen.values()) == {1}
    assert loader.peak_live_blocks <= loader.prefetch + 2


def test_epochs_reshuffle_and_memory_stays_bounded(transitions: Path) -> None:
    loader = BlockLoader(transitions, 64, block_rows=100, split="all", seed=1)
    first = [tuple(b.rewards.tolist()) for b in loader.epoch()]
    second = [tuple(b.rewards.tolist()) for b in loader.epoch()]
    assert first != second
    assert sorted(np.concatenate(first)) == sorted(np.concatenate(second))
    assert loader.live_blocks <= 1 and 1 <= loader.peak_live_blocks <= loader.prefetch + 2


def test_stopping_early_ends_the_reader(transitions: Path) -> None:
    loader = BlockLoader(transitions, 16, block_rows=100)
    stream = iter(loader)
    batches = [next(stream) for _ in range(5)]
    assert len(batches) == 5
    stream.close()  # runs the epoch's cleanup: the reader thread is joined, not leaked
    import threading

    assert not any(t.name == "blocks" for t in threading.enumerate())
