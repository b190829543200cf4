from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from benchmarks.disk_training import EPISODE_STEPS, MemoryCgroup, run_child, write_synthetic
from offline_rl.disk_buffer import DiskReplayBuffer
from offline_rl.storage import open_buffer
from transitions.metadata import read_meta

ROWS = 2_500  # two whole episodes and a shorter last one


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("disk_training") / "synthetic.h5"
    write_synthetic(path, ROWS)
    return path


def test_the_synthetic_file_is_hopper_shaped_contiguous_and_in_episodes(synthetic: Path) -> None:
    meta = read_meta(synthetic)
    assert (meta.size, meta.obs_dim, meta.act_dim, meta.num_episodes) == (ROWS, 11, 3, 3)
    with h5py.File(synthetic, "r") as f:
        assert all(f[key].chunks is None for key in f)
        ends = np.flatnonzero(f["timeouts"][()])
        episode_ids = f["episode_ids"][()]
    assert ends.tolist() == [EPISODE_STEPS - 1, 2 * EPISODE_STEPS - 1, ROWS - 1]
    assert np.bincount(episode_ids).tolist() == [1000, 1000, 500]


def test_both_storages_sample_the_same_batches_from_it(synthetic: Path) -> None:
    cpu = torch.device("cpu")
    memory = open_buffer(synthetic, "memory", cpu, (0,))
    disk = open_buffer(synthetic, "disk", cpu, (0,))
    assert isinstance(disk, DiskReplayBuffer)
    try:
        for _ in range(3):
            assert torch.equal(memory.sample(64).observations, disk.sample(64).observations)
    finally:
        disk.close()


def test_a_run_past_the_ceiling_is_stopped_and_one_under_it_reports(synthetic: Path) -> None:
    """The checked ceiling applies to the child's private memory: a torch process holds more
    than 50 MB, and less than 4 GB for this file."""
    args = argparse.Namespace(steps=5, warmup=1)
    with pytest.raises(SystemExit, match="passed the 50000000 byte ceiling"):
        run_child("disk", synthetic, args, 50_000_000, None)
    result = run_child("disk", synthetic, args, 4_000_000_000, None)
    assert result["storage"] == "disk" and result["steps"] == 5 and result["steps_per_s"] > 0
    assert 50 < result["sampled_peak_RssAnon_mb"] < 4000


def test_a_run_in_a_memory_cgroup_reports_its_peak(synthetic: Path) -> None:
    """Where this process may make a memory cgroup (root on a cgroup file system), the disk run
    runs inside it and the cgroup's peak, page cache included, is reported."""
    cgroup = MemoryCgroup.make(4_000_000_000)
    if cgroup is None:
        pytest.skip("no memory cgroup can be made here")
    try:
        args = argparse.Namespace(steps=5, warmup=1)
        result = run_child("disk", synthetic, args, 4_000_000_000, None, cgroup)
    finally:
        cgroup.remove()
    assert 10 < result["cgroup_peak_mb"] < 4000
    assert not cgroup.path.exists()
