from __future__ import annotations

import pytest
import torch

from offline_rl.buffer import ReplayBuffer


def test_sampling_is_deterministic_under_seed_and_within_size() -> None:
    def draw(seed: int) -> torch.Tensor:
        buffer = ReplayBuffer(2, 1, capacity=100, seed=seed)
        buffer.add(
            torch.arange(20.0).repeat(2, 1).T,
            torch.zeros(20, 1),
            torch.arange(20.0),
            torch.zeros(20, 2),
            torch.zeros(20),
        )
        return buffer.sample(64).rewards

    first, again, other = draw(1), draw(1), draw(2)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert first.max() < 20  # only filled rows are sampled


def test_overfilling_is_an_error() -> None:
    buffer = ReplayBuffer(1, 1, capacity=2)
    with pytest.raises(ValueError, match="capacity 2"):
        buffer.add(
            torch.zeros(3, 1), torch.zeros(3, 1), torch.zeros(3), torch.zeros(3, 1), torch.zeros(3)
        )
