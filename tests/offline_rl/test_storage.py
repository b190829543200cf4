from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from offline_rl.buffer import ReplayBuffer
from offline_rl.disk_buffer import DiskReplayBuffer
from offline_rl.storage import MEMORY_SHARE, choose_storage, memory_bytes, open_buffer
from transitions.loader import load_transitions
from transitions.metadata import read_meta

CPU = torch.device("cpu")


def test_memory_bytes_are_what_loading_allocates(random_transitions: Path) -> None:
    data = load_transitions(random_transitions)
    assert data.packed is not None and data.returns_to_go is not None
    episode_ids = 8 * len(data)  # int64, made while loading and dropped after
    loaded = data.packed.nbytes + data.returns_to_go.nbytes + episode_ids
    assert memory_bytes(data.meta) == loaded


def test_auto_takes_disk_above_the_share_of_available_memory(
    random_transitions: Path, caplog: pytest.LogCaptureFixture
) -> None:
    meta = read_meta(random_transitions)
    need = memory_bytes(meta)
    fits = int(need / MEMORY_SHARE)  # exactly the share: still memory
    with caplog.at_level(logging.INFO, logger="offline_rl.storage"):
        assert choose_storage("auto", meta, CPU, available=fits) == "memory"
        assert choose_storage("auto", meta, CPU, available=fits - 100) == "disk"
    assert "auto -> memory" in caplog.records[0].getMessage()
    decision = caplog.records[1].getMessage()
    assert "auto -> disk" in decision and "more than 50%" in decision
    assert f"{meta.size} rows" in decision


def test_auto_measures_this_machine(random_transitions: Path) -> None:
    """A 600-row file fits in any machine that runs the tests."""
    assert choose_storage("auto", read_meta(random_transitions), CPU) == "memory"


@pytest.mark.parametrize("storage", ["memory", "disk"])
def test_a_named_storage_is_taken_whatever_the_memory(
    random_transitions: Path, storage: str
) -> None:
    meta = read_meta(random_transitions)
    assert choose_storage(storage, meta, CPU, available=0) == storage  # type: ignore[arg-type]
    assert choose_storage(storage, meta, CPU, available=10**15) == storage  # type: ignore[arg-type]


def test_open_buffer_gives_the_storages_sampler(random_transitions: Path) -> None:
    memory = open_buffer(random_transitions, "memory", CPU, (0,))
    disk = open_buffer(random_transitions, "disk", CPU, (0,))
    assert isinstance(memory, ReplayBuffer) and isinstance(disk, DiskReplayBuffer)
    try:
        assert torch.equal(memory.sample(8).observations, disk.sample(8).observations)
    finally:
        disk.close()
