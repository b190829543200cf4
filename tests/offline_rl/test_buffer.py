from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from offline_rl.buffer import ReplayBuffer
from offline_rl.seeds import SAMPLER, stream_seed
from transitions.loader import load_transitions


def test_sampling_is_deterministic_under_seed_and_within_size() -> None:
    def draw(seed: int) -> torch.Tensor:
        buffer = ReplayBuffer(2, 1, capacity=100, seeds=[seed])
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


FIELDS = ("observations", "actions", "rewards", "next_observations", "dones", "next_actions")


def test_a_batch_is_whole_rows_of_the_loaded_fields(random_transitions: Path) -> None:
    """The packed rows give each field its own columns, whether `load_transitions` packed them
    (no copy) or the buffer packs separate tensors itself."""
    data = load_transitions(random_transitions)
    assert data.packed is not None
    assert (
        data.observations.untyped_storage().data_ptr() == data.packed.untyped_storage().data_ptr()
    )
    separate = dataclasses.replace(
        data, packed=None, **{name: getattr(data, name).clone() for name in FIELDS}
    )
    rows = torch.randint(
        0, len(data), (64,), generator=torch.Generator().manual_seed(stream_seed(3, SAMPLER))
    )
    for source in (data, separate):
        batch = ReplayBuffer.from_transitions(source, seeds=[3]).sample(64)
        for name in FIELDS:
            assert torch.equal(getattr(batch, name)[0], getattr(data, name)[rows]), name


def test_each_seed_draws_its_own_batches_whatever_seeds_run_beside_it(
    random_transitions: Path,
) -> None:
    data = load_transitions(random_transitions)
    together = ReplayBuffer.from_transitions(data, seeds=[4, 9]).sample(32)
    alone = ReplayBuffer.from_transitions(data, seeds=[9]).sample(32)
    assert together.observations.shape == (2, 32, data.meta.obs_dim)
    assert torch.equal(together.observations[1], alone.observations[0])
    assert not torch.equal(together.observations[0], together.observations[1])


def test_adding_the_wrong_fields_is_an_error() -> None:
    buffer = ReplayBuffer(1, 1, capacity=4, with_next_actions=True)
    with pytest.raises(ValueError, match="6 fields per row, got 5"):
        buffer.add(
            torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(2), torch.zeros(2, 1), torch.zeros(2)
        )
