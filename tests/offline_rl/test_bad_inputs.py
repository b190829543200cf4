"""Broken transitions files and checkpoints fail with an error naming the file, not a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.resume import load_resume_state
from offline_rl.agent import agent_path, load_agent, load_agents, save_agents
from tests.offline_rl.algos.test_contract import build
from transitions.loader import load_transitions
from transitions.metadata import TransitionsFileError, read_meta

CPU = torch.device("cpu")


def copy_of(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / source.name
    shutil.copy(source, target)
    return target


@pytest.mark.parametrize("keep_fraction", [0.0, 0.1, 0.5, 0.9])
def test_truncated_transitions_file(
    random_transitions: Path, tmp_path: Path, keep_fraction: float
) -> None:
    path = copy_of(random_transitions, tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    with pytest.raises(TransitionsFileError, match=str(path)):
        load_transitions(path)


def test_garbage_transitions_file(tmp_path: Path) -> None:
    path = tmp_path / "train.h5"
    path.write_bytes(b"not hdf5 at all" * 100)
    with pytest.raises(TransitionsFileError, match=rf"{path}: not a readable HDF5 file"):
        load_transitions(path)


def test_overwritten_block_in_transitions_file(random_transitions: Path, tmp_path: Path) -> None:
    path = copy_of(random_transitions, tmp_path)
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 4096] = b"\xff" * 4096  # bit rot in the middle of the arrays
    path.write_bytes(bytes(raw))
    try:
        data = load_transitions(path)
    except TransitionsFileError as error:
        assert str(path) in str(error)
    else:  # the block held array values only: they must still be finite to be accepted
        assert torch.isfinite(data.observations).all() and torch.isfinite(data.rewards).all()


@pytest.mark.parametrize(
    ("key", "value"),
    [("rewards", np.nan), ("observations", np.inf), ("next_observations", -np.inf)],
)
def test_non_finite_values_in_transitions(
    random_transitions: Path, tmp_path: Path, key: str, value: float
) -> None:
    path = copy_of(random_transitions, tmp_path)
    with h5py.File(path, "a") as f:
        f[key][3] = value
    with pytest.raises(TransitionsFileError, match=rf"{path}: array '{key}' holds NaN or inf"):
        load_transitions(path)


def test_non_finite_statistics_in_transitions(random_transitions: Path, tmp_path: Path) -> None:
    path = copy_of(random_transitions, tmp_path)
    with h5py.File(path, "a") as f:
        std = f.attrs["obs_std"]
        std[0] = np.nan
        f.attrs["obs_std"] = std
    with pytest.raises(TransitionsFileError, match=rf"{path}: attribute 'obs_std'"):
        read_meta(path)


def test_mismatched_rows_in_transitions(random_transitions: Path, tmp_path: Path) -> None:
    path = copy_of(random_transitions, tmp_path)
    with h5py.File(path, "a") as f:  # contiguous arrays cannot be resized: replace one
        short = f["rewards"][:10]
        del f["rewards"]
        f["rewards"] = short
    with pytest.raises(TransitionsFileError, match=r"\['rewards'\] do not have \d+ rows"):
        read_meta(path)


def test_statistics_of_another_shape(random_transitions: Path, tmp_path: Path) -> None:
    path = copy_of(random_transitions, tmp_path)
    with h5py.File(path, "a") as f:
        f.attrs["obs_mean"] = np.zeros(17, dtype=np.float32)  # HalfCheetah's, not Hopper's 11
    with pytest.raises(TransitionsFileError, match=rf"{path}: attribute 'obs_mean' has 17"):
        read_meta(path)


@pytest.fixture
def bc_agent(random_transitions: Path, tmp_path: Path) -> Path:
    data = load_transitions(random_transitions)
    algo = build("bc", data.meta.obs_dim, data.meta.act_dim)
    save_agents(tmp_path / "agents", "bc", algo, data.meta, [0])
    return agent_path(tmp_path / "agents", 0)


def test_agent_loads(bc_agent: Path) -> None:
    assert load_agent(bc_agent, CPU).algo_name == "bc"


def test_agents_of_different_runs_are_not_evaluated_together(
    bc_agent: Path, random_transitions: Path, tmp_path: Path
) -> None:
    data = load_transitions(random_transitions)
    other = build("td3_bc", data.meta.obs_dim, data.meta.act_dim)
    save_agents(tmp_path / "other", "td3_bc", other, data.meta, [1])
    with pytest.raises(CheckpointError, match=r"seed_1.pt: its algo differs from .*seed_0.pt"):
        load_agents([bc_agent, agent_path(tmp_path / "other", 1)], CPU)


def test_truncated_agent(bc_agent: Path) -> None:
    bc_agent.write_bytes(bc_agent.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=rf"{bc_agent}: unreadable checkpoint"):
        load_agent(bc_agent, CPU)


def test_agent_weights_of_another_algorithm(bc_agent: Path) -> None:
    payload = load_checkpoint(bc_agent)
    payload["algo"] = "td3_bc"  # bc's weights under td3_bc's name
    payload["config"] = build("td3_bc").config.model_dump()
    save_checkpoint(bc_agent, payload)
    with pytest.raises(CheckpointError, match=rf"{bc_agent}: .*do not fit td3_bc"):
        load_agent(bc_agent, CPU)


def test_agent_with_unknown_algorithm(bc_agent: Path) -> None:
    payload = load_checkpoint(bc_agent)
    payload["algo"] = "dqn"
    save_checkpoint(bc_agent, payload)
    with pytest.raises(CheckpointError, match=rf"{bc_agent}: unknown algorithm 'dqn'"):
        load_agent(bc_agent, CPU)


def test_resume_checkpoint_is_not_an_agent(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"algo": "td3_bc", "step": 3})
    with pytest.raises(CheckpointError, match=rf"{path}: checkpoint has kind=None"):
        load_agent(path, CPU)


def test_resume_checkpoint_of_another_algorithm_is_not_resumed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"algo": "bc", "fingerprint": "f", "step": 3})
    assert load_resume_state(path, "f", {"algo": "td3_bc"}) is None
    assert f"{path}: checkpoint has algo='bc', expected 'td3_bc'" in caplog.text


def test_pickle_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "agent.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match=rf"{path}: not a checkpoint of this project"):
        load_agent(path, CPU)
