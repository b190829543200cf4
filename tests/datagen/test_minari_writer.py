from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import minari
import numpy as np
import pytest

from datagen.collection.minari_writer import DatasetInfo, write_dataset
from datagen.collection.reference import D4RL_REFERENCE_SCORES, d4rl_reference
from datagen.collection.rollouts import Episode, rollout_episodes
from tests.conftest import make_random_dataset


def test_dataset_readable_by_minari_and_h5py(
    random_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(random_dataset.parent.parent))
    dataset = minari.load_dataset("hopper/random-v0")
    assert dataset.total_steps == 600
    assert dataset.spec.env_spec is not None and dataset.spec.env_spec.id == "Hopper-v5"
    _low, high = D4RL_REFERENCE_SCORES["Hopper"]
    score = minari.get_normalized_score(dataset, np.array([high]))
    np.testing.assert_allclose(score, [1.0])
    steps = 0
    with h5py.File(random_dataset / "data" / "main_data.hdf5", "r") as f:
        for name in f:
            group = f[name]
            assert group["observations"].shape[0] == group["rewards"].shape[0] + 1
            steps += group["rewards"].shape[0]
    assert steps == 600
    meta = json.loads((random_dataset / "data" / "metadata.json").read_text())
    for key in (
        "ref_min_score",
        "ref_max_score",
        "algorithm_name",
        "code_permalink",
        "description",
        "env_spec",
    ):
        assert key in meta


def test_rewrite_replaces_whole_dataset(tmp_path: Path) -> None:
    make_random_dataset(tmp_path, steps=300)
    make_random_dataset(tmp_path, steps=200, seed=1)
    meta = json.loads((tmp_path / "hopper/random-v0/data/metadata.json").read_text())
    assert meta["total_steps"] == 200
    assert [p.name for p in (tmp_path / "hopper").iterdir() if p.name.startswith(".")] == []


def test_failed_write_leaves_no_dataset(tmp_path: Path) -> None:
    def crashing_rollout() -> Iterator[Episode]:
        yield from rollout_episodes("Hopper-v5", lambda obs: np.zeros((obs.shape[0], 3)), 50, 0, 2)
        raise RuntimeError("policy crashed")

    info = DatasetInfo("hopper/broken-v0", "Hopper-v5", "x", "x", "x")
    with pytest.raises(RuntimeError, match="policy crashed"):
        write_dataset(
            tmp_path, info, crashing_rollout(), d4rl_reference("Hopper-v5"), chunk_episodes=1
        )
    assert not (tmp_path / "hopper" / "broken-v0").exists()
    assert list(tmp_path.rglob(".broken-v0*")) == []
