"""Transitions files of Discrete actions and Dict observations (schema 3), and schema 2 files:
the header says the spaces, the loader gives discrete actions as exact float indices (untouched by
the transforms), memory-mapped rows equal loaded rows, and a schema 2 file still reads as Box."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from datagen.preprocessing.config import PreprocessConfig
from datagen.preprocessing.preprocess import preprocess
from tests.datagen.minari_spaces import DICT_ENV, write_rollouts
from transitions.block_loader import BlockLoader
from transitions.loader import load_transitions, shift_within_episodes
from transitions.mapped import MappedRows
from transitions.metadata import TransitionsFileError, read_meta
from transitions.spaces import ActionLayout, ObservationLayout

CARTPOLE = "cartpole/random-v0"
DICT = "dictpoint/random-v0"


@pytest.fixture(scope="module")
def discrete(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("minari")
    folder = write_rollouts(root, CARTPOLE, "CartPole-v1", episodes=10, seed=0)
    out = root / "cartpole.h5"
    preprocess([(CARTPOLE, folder)], out, PreprocessConfig(validation_fraction=0.3))
    return out


@pytest.fixture(scope="module")
def dict_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("minari")
    folder = write_rollouts(root, DICT, DICT_ENV, episodes=10, seed=2)
    out = root / "dict.h5"
    preprocess([(DICT, folder)], out, PreprocessConfig(observation_keys=("velocity", "goal")))
    return out


def test_the_header_says_the_spaces(discrete: Path, dict_file: Path) -> None:
    meta = read_meta(discrete)
    assert meta.discrete_actions and (meta.act_dim, meta.num_actions, meta.action_start) == (
        2,
        2,
        0,
    )
    assert meta.action_low == meta.action_high == () and meta.observation_keys == ()
    assert meta.actions == ActionLayout(act_dim=2, num_actions=2)
    assert meta.observations == ObservationLayout(obs_dim=4)
    assert meta.env_id == "CartPole-v1" and meta.dataset_ids == (CARTPOLE,)
    assert meta.num_validation_episodes == 3

    meta = read_meta(dict_file)
    assert (meta.num_actions, meta.action_start, meta.obs_dim) == (3, -1, 4)
    assert meta.observation_keys == (("velocity", 3), ("goal", 1))
    assert meta.observations.flatten(
        {"goal": [9.0], "position": [7.0, 7.0], "velocity": [1.0, 2.0, 3.0]}
    ).tolist() == [1.0, 2.0, 3.0, 9.0]
    assert type(meta).from_dict(json.loads(json.dumps(meta.to_dict()))) == meta


@pytest.mark.parametrize("split", ["all", "train", "validation"])
def test_discrete_actions_load_as_exact_float_indices(discrete: Path, split: str) -> None:
    with h5py.File(discrete, "r") as f:
        keep = {
            "all": slice(None),
            "train": ~f["validation"][()],
            "validation": f["validation"][()],
        }
        stored = f["actions"][()][keep[split]]
        episode_ids = f["episode_ids"][()][keep[split]]
    data = load_transitions(discrete, split=split)  # type: ignore[arg-type]
    assert data.actions.dtype == torch.float32 and data.actions.shape == (len(stored),)
    assert torch.equal(data.actions, torch.from_numpy(stored).float())  # no [-1, 1] scaling
    assert torch.equal(data.actions.long(), torch.from_numpy(stored))
    expected_next = shift_within_episodes(torch.from_numpy(stored), torch.from_numpy(episode_ids))
    assert data.next_actions is not None
    assert torch.equal(data.next_actions, expected_next.float())
    assert data.packed is not None and data.packed.shape == (len(stored), 4 + 1 + 1 + 4 + 1 + 1)


@pytest.mark.parametrize("split", ["all", "train", "validation"])
def test_mapped_rows_are_the_loaded_rows_before_transforms(discrete: Path, split: str) -> None:
    raw = PreprocessConfig(normalize_observations=False)  # loaded rows are then the raw rows
    out = discrete.with_name("raw.h5")
    folder = discrete.parent / CARTPOLE
    preprocess([(CARTPOLE, folder)], out, raw.model_copy(update={"validation_fraction": 0.3}))
    loaded = load_transitions(out, split=split)  # type: ignore[arg-type]
    rows = MappedRows(out, split)  # type: ignore[arg-type]
    try:
        assert rows.shapes[1] == () and rows.shapes[-1] == ()
        gathered = rows.gather(np.arange(rows.size))
    finally:
        rows.close()
    assert loaded.packed is not None
    np.testing.assert_array_equal(gathered, loaded.packed.numpy())


def test_a_schema_2_file_reads_as_box(random_transitions: Path, tmp_path: Path) -> None:
    """Every file written before schema 3: no space attributes, float actions of the bounds."""
    old = tmp_path / "old.h5"
    old.write_bytes(random_transitions.read_bytes())
    with h5py.File(old, "a") as f:
        f.attrs["schema_version"] = 2
        for key in ("num_actions", "action_start", "observation_keys"):
            del f.attrs[key]
    meta, new = read_meta(old), read_meta(random_transitions)
    assert not meta.discrete_actions and meta.observation_keys == ()
    assert (meta.act_dim, meta.action_low, meta.action_high) == (3, (-1.0,) * 3, (1.0,) * 3)
    assert meta == new
    assert torch.equal(load_transitions(old).packed, load_transitions(random_transitions).packed)  # type: ignore[arg-type]


def test_the_block_loader_gives_discrete_actions_as_float_indices(discrete: Path) -> None:
    with h5py.File(discrete, "r") as f:
        stored = f["actions"][()]
    loader = BlockLoader(discrete, batch_size=4, block_rows=16, split="all")
    seen = torch.cat([batch.actions for batch in loader.epoch()])
    assert seen.dtype == torch.float32 and seen.shape == (len(stored),)
    assert sorted(seen.long().tolist()) == sorted(stored.tolist())  # every row once, unscaled


def test_an_action_index_outside_the_space_is_named(discrete: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.h5"
    broken.write_bytes(discrete.read_bytes())
    with h5py.File(broken, "a") as f:
        f["actions"][5] = 7
    message = rf"{broken}: array 'actions' holds 7, not an index of Discrete\(2\)"
    with pytest.raises(TransitionsFileError, match=message):
        load_transitions(broken)
    rows = MappedRows(broken, "all")
    try:
        with pytest.raises(TransitionsFileError, match=message):
            rows.gather(np.arange(rows.size))
    finally:
        rows.close()


def test_observation_keys_that_do_not_add_up_are_named(dict_file: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.h5"
    broken.write_bytes(dict_file.read_bytes())
    with h5py.File(broken, "a") as f:
        f.attrs["observation_keys"] = json.dumps([["velocity", 3], ["goal", 2]])
    with pytest.raises(TransitionsFileError, match=r"'observation_keys' .* adds up to 5 columns"):
        read_meta(broken)
