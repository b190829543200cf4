"""Disk storage gives memory storage's batches, bit for bit, for the same seeds: across steps,
batch sizes, a save and restore of the sampler state in either direction, and whole training
runs of every algorithm, interrupted in one storage and resumed in the other."""

from __future__ import annotations

import threading
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from datagen.preprocessing.config import PreprocessConfig
from datagen.preprocessing.preprocess import preprocess
from offline_rl.buffer import ReplayBuffer
from offline_rl.disk_buffer import DiskReplayBuffer
from tests.offline_rl.algos.test_contract import ROW_BOX_NAMES
from tests.offline_rl.test_trainer import Interrupt, run
from transitions.loader import Batch, TrainBatch, load_transitions
from transitions.metadata import TransitionsFileError

FIELDS = ("observations", "actions", "rewards", "next_observations", "dones", "next_actions")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def transformed(tmp_path_factory: pytest.TempPathFactory, random_dataset: Path) -> Path:
    """Every transform at work (normalised observations, scaled and shifted rewards) and held-out
    episodes, so that train indices and file rows differ."""
    out = tmp_path_factory.mktemp("disk") / "transformed.h5"
    config = PreprocessConfig(
        chunk_rows=100, validation_fraction=0.3, reward_scale=3.0, reward_shift=-0.7
    )
    preprocess([("hopper/random-v0", random_dataset)], out, config)
    return out


def memory_buffer(path: Path, seeds: tuple[int, ...], device: str = "cpu") -> ReplayBuffer:
    return ReplayBuffer.from_transitions(load_transitions(path, device, split="train"), seeds)


def assert_same(memory: Batch, disk: TrainBatch, where: str) -> None:
    for name in FIELDS:
        ours, theirs = getattr(disk, name), getattr(memory, name)
        assert ours.device == theirs.device, where
        assert torch.equal(ours, theirs), f"{name} differs at {where}"


def assert_same_state(memory: list[torch.Tensor], disk: list[torch.Tensor], where: str) -> None:
    assert len(memory) == len(disk), where
    for ours, theirs in zip(disk, memory, strict=True):
        assert torch.equal(ours, theirs), f"sampler state differs at {where}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seeds", [(0,), (3, 1, 4)])
def test_disk_batches_equal_memory_batches(
    transformed: Path, seeds: tuple[int, ...], device: str
) -> None:
    """Step by step, the same (S, B, ...) batch and the same sampler state after it, though the
    disk sampler's thread has drawn batches ahead; a new batch size restarts it in step."""
    memory = memory_buffer(transformed, seeds, device)
    with DiskReplayBuffer(transformed, device, seeds, prefetch=3) as disk:
        assert disk.size == memory.size
        for step, batch_size in enumerate([32] * 8 + [7] * 3 + [32] * 2):
            batch = disk.sample(batch_size)
            assert batch.observations.shape[:2] == (len(seeds), batch_size)
            assert_same(memory.sample(batch_size), batch, f"step {step}")
            assert_same_state(memory.sampler_state(), disk.sampler_state(), f"step {step}")


@pytest.mark.parametrize("seeds", [(0,), (2, 5)])
def test_a_sampler_state_moves_between_the_storages(
    transformed: Path, seeds: tuple[int, ...]
) -> None:
    """A state saved by either storage after k batches, restored into a fresh one of the other,
    continues with the batches the first would have drawn next."""
    memory = memory_buffer(transformed, seeds)
    with DiskReplayBuffer(transformed, seeds=seeds) as disk:
        for _ in range(5):
            memory.sample(16)
            disk.sample(16)
        saved_by_disk, saved_by_memory = disk.sampler_state(), memory.sampler_state()
        assert_same_state(saved_by_memory, saved_by_disk, "saving")
        expected = [memory.sample(16) for _ in range(4)]
        continued = [disk.sample(16) for _ in range(4)]
    for step, (ours, theirs) in enumerate(zip(continued, expected, strict=True)):
        assert_same(theirs, ours, f"disk continuing, step {step}")

    with DiskReplayBuffer(transformed, seeds=seeds) as resumed:
        resumed.sample(16)  # its thread is running ahead when the state is restored
        resumed.set_sampler_state(saved_by_memory)
        assert_same_state(saved_by_memory, resumed.sampler_state(), "restored")
        for step, theirs in enumerate(expected):
            assert_same(theirs, resumed.sample(16), f"memory -> disk, step {step}")

    back = memory_buffer(transformed, seeds)
    back.set_sampler_state(saved_by_disk)
    for step, theirs in enumerate(expected):
        assert_same(theirs, back.sample(16), f"disk -> memory, step {step}")


def test_a_different_seed_gives_different_batches(transformed: Path) -> None:
    with (
        DiskReplayBuffer(transformed, seeds=(0,)) as one,
        DiskReplayBuffer(transformed, seeds=(1,)) as other,
    ):
        assert not torch.equal(one.sample(32).observations, other.sample(32).observations)


def test_an_error_in_the_thread_is_raised_by_sample(random_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "nan.h5"
    preprocess([("hopper/random-v0", random_dataset)], out, PreprocessConfig())
    with h5py.File(out, "a") as f:
        f["observations"][:] = np.nan
    with DiskReplayBuffer(out) as disk, pytest.raises(TransitionsFileError, match="NaN or inf"):
        disk.sample(8)


def test_close_stops_the_threads(transformed: Path) -> None:
    before = set(threading.enumerate())
    disk = DiskReplayBuffer(transformed, prefetch=2, gathers=3)
    disk.sample(8)
    names = [t.name.split("_")[0] for t in set(threading.enumerate()) - before]
    assert names.count("disk-batches") == 1
    assert 1 <= names.count("disk-gather") <= 3  # the pool starts threads as it needs them
    disk.close()
    assert set(threading.enumerate()) - before == set()


@pytest.mark.parametrize("name", ROW_BOX_NAMES)
def test_every_algorithm_trains_from_disk_as_from_memory(
    name: str, transformed: Path, tmp_path: Path
) -> None:
    """Runs that start in one storage, are interrupted after a checkpoint and resume in the other
    end with the weights of a run in memory storage throughout (two seeds)."""
    seeds = (0, 7)

    def disk() -> DiskReplayBuffer:
        return DiskReplayBuffer(transformed, seeds=seeds)

    def memory() -> ReplayBuffer:
        return memory_buffer(transformed, seeds)

    straight = run(name, memory, tmp_path / "memory", steps=20, seeds=seeds)
    for first, then in ((memory, disk), (disk, memory)):
        workdir = tmp_path / f"{first.__name__}-first"
        with pytest.raises(Interrupt):
            run(name, first, workdir, steps=20, seeds=seeds, stop_after_eval=20)
        resumed = run(name, then, workdir, steps=20, seeds=seeds)
        for key in straight:
            assert torch.equal(straight[key], resumed[key]), f"{key}: {first.__name__} first"
