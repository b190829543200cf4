"""Broken Minari datasets and behaviour checkpoints fail with an error naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from core.checkpoint import CheckpointError, save_checkpoint
from datagen.behavior.policies import SACPolicy
from datagen.collection.config import RecipeError
from datagen.collection.recipes import checkpoint_returns, choose_checkpoint
from datagen.preprocessing.config import PreprocessConfig
from datagen.preprocessing.minari_reader import PreprocessError
from datagen.preprocessing.preprocess import preprocess
from offline_rl.agent import agent_path, save_agents
from tests.offline_rl.algos.test_contract import build
from transitions.loader import load_transitions

CONFIG = PreprocessConfig(chunk_rows=1000)


@pytest.fixture
def dataset(random_dataset: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "random-v0"
    shutil.copytree(random_dataset, copy)
    return copy


def run(dataset: Path, tmp_path: Path, env_id: str | None = "Hopper-v5") -> Path:
    out = tmp_path / "t.h5"
    preprocess([("hopper/random-v0", dataset)], out, CONFIG, env_id=env_id)
    return out


def edit_metadata(dataset: Path, **changes: object) -> Path:
    meta_file = dataset / "data" / "metadata.json"
    metadata = json.loads(meta_file.read_text())
    for key, value in changes.items():
        if value is None:
            metadata.pop(key)
        else:
            metadata[key] = value
    meta_file.write_text(json.dumps(metadata))
    return meta_file


def test_intact_copy_preprocesses(dataset: Path, tmp_path: Path) -> None:
    assert load_transitions(run(dataset, tmp_path)).meta.size == 600


@pytest.mark.parametrize("keep_fraction", [0.0, 0.3, 0.8])
def test_truncated_main_data(dataset: Path, tmp_path: Path, keep_fraction: float) -> None:
    main = dataset / "data" / "main_data.hdf5"
    main.write_bytes(main.read_bytes()[: int(main.stat().st_size * keep_fraction)])
    with pytest.raises(PreprocessError, match=str(main)):
        run(dataset, tmp_path)
    assert not (tmp_path / "t.h5").exists()


def test_metadata_that_is_not_json(dataset: Path, tmp_path: Path) -> None:
    meta_file = dataset / "data" / "metadata.json"
    meta_file.write_text('{"env_spec": ')
    with pytest.raises(PreprocessError, match=rf"{meta_file}: invalid JSON"):
        run(dataset, tmp_path)


def test_metadata_without_spaces(dataset: Path, tmp_path: Path) -> None:
    meta_file = edit_metadata(dataset, action_space=None)
    with pytest.raises(PreprocessError, match=rf"{meta_file}: missing keys \['action_space'\]"):
        run(dataset, tmp_path)


def test_metadata_with_malformed_space(dataset: Path, tmp_path: Path) -> None:
    meta_file = edit_metadata(dataset, observation_space="{not json")
    with pytest.raises(PreprocessError, match=rf"{meta_file}: malformed space"):
        run(dataset, tmp_path)


def test_unsupported_minari_version(dataset: Path, tmp_path: Path) -> None:
    meta_file = edit_metadata(dataset, minari_version="0.1.0")
    with pytest.raises(PreprocessError, match=rf"{meta_file}: minari_version '0.1.0' .*supported"):
        run(dataset, tmp_path)


def test_hopper_dataset_with_halfcheetah_params(dataset: Path, tmp_path: Path) -> None:
    meta_file = dataset / "data" / "metadata.json"
    with pytest.raises(
        PreprocessError, match=rf"{meta_file}: dataset of Hopper-v5, but params say env HalfCheetah"
    ):
        run(dataset, tmp_path, env_id="HalfCheetah-v5")


def test_shapes_that_do_not_match_the_environment(dataset: Path, tmp_path: Path) -> None:
    meta_file = dataset / "data" / "metadata.json"
    space = json.loads(json.loads(meta_file.read_text())["observation_space"])
    space["shape"] = [17]
    edit_metadata(dataset, observation_space=json.dumps(space))
    with pytest.raises(PreprocessError, match=rf"{meta_file}: .*\(17,\).*Hopper-v5's \(11,\)"):
        run(dataset, tmp_path, env_id=None)


@pytest.mark.parametrize(
    ("key", "value"), [("rewards", np.nan), ("observations", np.inf), ("actions", -np.inf)]
)
def test_non_finite_values(dataset: Path, tmp_path: Path, key: str, value: float) -> None:
    main = dataset / "data" / "main_data.hdf5"
    with h5py.File(main, "a") as f:
        f[f"episode_1/{key}"][0] = value
    with pytest.raises(PreprocessError, match=rf"{main}: episode_1/{key} holds NaN or inf"):
        run(dataset, tmp_path)


def test_behaviour_checkpoint_of_another_algorithm(
    random_transitions: Path, tmp_path: Path
) -> None:
    data = load_transitions(random_transitions)
    save_agents(
        tmp_path, "td3_bc", build("td3_bc", data.meta.obs_dim, data.meta.act_dim), data.meta, [0]
    )
    path = agent_path(tmp_path, 0)
    with pytest.raises(
        CheckpointError, match=rf"{path}: checkpoint has algo='td3_bc', expected 'sac'"
    ):
        SACPolicy(path)


def test_behaviour_checkpoint_without_weights(tmp_path: Path) -> None:
    path = tmp_path / "step_1000.pt"
    save_checkpoint(path, {"algo": "sac", "obs_dim": 11})
    with pytest.raises(CheckpointError, match=rf"{path}: not a whole SAC behaviour checkpoint"):
        SACPolicy(path)


def test_truncated_behaviour_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "step_1000.pt"
    save_checkpoint(path, {"algo": "sac", "actor": {"w": torch.zeros(100, 100)}})
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=rf"{path}: unreadable checkpoint"):
        SACPolicy(path)


@pytest.mark.parametrize("text", ["{", '{"checkpoints": 3}', "[]"])
def test_broken_checkpoint_index(tmp_path: Path, text: str) -> None:
    (tmp_path / "checkpoints.json").write_text(text)
    with pytest.raises(RecipeError, match=rf"{tmp_path / 'checkpoints.json'}: not a behaviour"):
        checkpoint_returns(tmp_path)


def test_medium_is_the_checkpoint_closest_to_the_fraction_not_the_first_past_it(
    tmp_path: Path,
) -> None:
    """The first fidelity run's curve: the return leapt from 714 to 2,553 between checkpoints, so
    the first checkpoint above a third of the expert's was a near-expert."""
    returns = {
        "step_80000": 714.0, "step_85000": 2553.0, "step_90000": 1589.0, "step_95000": 1044.0,
        "step_105000": 1144.4, "step_170000": 3317.0, "step_175000": 1100.0,
    }  # fmt: skip
    source = tmp_path / "checkpoints.json"
    assert choose_checkpoint("expert", returns, 0.33, source) == "step_170000"
    # 0.33 x 3317 = 1094.6: 105000 (1144.4) is closest; 175000, after the expert, is not a candidate
    assert choose_checkpoint("medium", returns, 0.33, source) == "step_105000"
    tie = {"step_1": 50.0, "step_2": 150.0, "step_3": 200.0}
    assert choose_checkpoint("medium", tie, 0.5, source) == "step_1"  # 50 and 150 tie: earliest


def test_medium_of_an_expert_with_a_negative_return(tmp_path: Path) -> None:
    """HalfCheetah's early policies: every return negative, so no "medium" fraction exists."""
    returns = {"step_300": -12.8, "step_600": -6.4}
    source = tmp_path / "checkpoints.json"
    assert choose_checkpoint("expert", returns, 0.5, source) == "step_600"
    with pytest.raises(RecipeError, match=rf"{source}: medium .* -6.40 \(not positive\)"):
        choose_checkpoint("medium", returns, 0.5, source)
