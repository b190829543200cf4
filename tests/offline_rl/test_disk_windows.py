"""Disk storage for sequence models: the windows of `WindowBuffer` over the training rows in
memory, bit for bit, gathered from the memory-mapped file (held-out episodes and shifted rewards
at work), and a Decision Transformer run that moves between the storages at a resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from offline_rl.disk_buffer import DiskReplayBuffer
from offline_rl.windows import WindowBuffer
from tests.offline_rl.algos.test_contract import SMALL
from tests.offline_rl.test_disk_buffer import DEVICES, assert_same_state, transformed
from tests.offline_rl.test_trainer import Interrupt, run
from transitions.loader import WindowBatch, load_transitions

__all__ = ["transformed"]  # the fixture: a file with held-out episodes and every transform
FIELDS = ("observations", "actions", "returns_to_go", "timesteps", "mask")


def memory_windows(
    path: Path, context: int, seeds: tuple[int, ...], device: str = "cpu"
) -> WindowBuffer:
    return WindowBuffer(load_transitions(path, device, split="train"), context, seeds)


def assert_same(memory: WindowBatch, disk: WindowBatch, where: str) -> None:
    for name in FIELDS:
        ours, theirs = getattr(disk, name), getattr(memory, name)
        assert ours.device == theirs.device and ours.dtype == theirs.dtype, f"{name} at {where}"
        assert torch.equal(ours, theirs), f"{name} differs at {where}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("seeds", "context"), [((0,), 1), ((3, 1, 4), 6), ((2,), 40)])
def test_disk_windows_equal_memory_windows(
    transformed: Path, seeds: tuple[int, ...], context: int, device: str
) -> None:
    memory = memory_windows(transformed, context, seeds, device)
    with DiskReplayBuffer(transformed, device, seeds, prefetch=3, context=context) as disk:
        assert disk.size == memory.size
        padded = 0
        for step, batch_size in enumerate([16] * 6 + [5] * 2 + [16] * 2):
            batch = disk.sample(batch_size)
            assert isinstance(batch, WindowBatch)
            assert batch.mask.shape == (len(seeds), batch_size, context)
            assert_same(memory.sample(batch_size), batch, f"step {step}")
            assert_same_state(memory.sampler_state(), disk.sampler_state(), f"step {step}")
            padded += int((~batch.mask).sum())
        assert padded > 0 or context == 1  # episodes start inside some windows


def test_dt_trains_from_disk_as_from_memory(transformed: Path, tmp_path: Path) -> None:
    """Interrupted after a checkpoint in one storage and resumed in the other: the weights of a
    run in memory throughout (two seeds)."""
    seeds, context = (0, 7), SMALL["context"]

    def disk() -> DiskReplayBuffer:
        return DiskReplayBuffer(transformed, seeds=seeds, context=context)

    def memory() -> WindowBuffer:
        return memory_windows(transformed, context, seeds)

    straight = run("dt", memory, tmp_path / "memory", steps=20, seeds=seeds)
    for first, then in ((memory, disk), (disk, memory)):
        workdir = tmp_path / f"{first.__name__}-first"
        with pytest.raises(Interrupt):
            run("dt", first, workdir, steps=20, seeds=seeds, stop_after_eval=20)
        resumed = run("dt", then, workdir, steps=20, seeds=seeds)
        for key in straight:
            assert torch.equal(straight[key], resumed[key]), f"{key}: {first.__name__} first"
