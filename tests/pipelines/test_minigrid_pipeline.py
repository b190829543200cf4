"""MiniGrid through the whole pipeline on images: `dvc repro evaluate` with collect.envs
{minigrid-empty-5x5: MiniGrid-Empty-5x5-v0} (the namespace is the id without its version,
lower case) trains the behaviour DQN on the 7x7x3 image (CNN encoder),
measures reference scores, writes all six kinds with uint8 image observations, preprocesses the
expert kind into uint8 rows and trains discrete BC on it, whose evaluation reports the env's
success rate (reaching the goal) at 0.9 or more, as does the evaluate stage's, with its video.

Runs `dvc` in a throwaway copy of the repository (tests/pipelines/stage_runner.py); about 4-6
minutes on one CPU core. Its figures are recorded in docs/datasets.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import minari
import numpy as np
import pytest
import yaml

from tests.pipelines.params_edit import with_changes
from tests.pipelines.stage_runner import copy_repo, sh

pytestmark = pytest.mark.slow

ENV_ID = "MiniGrid-Empty-5x5-v0"
NAMESPACE = "minigrid-empty-5x5"
KINDS = ["random", "medium", "expert", "medium-replay", "full-replay", "medium-expert"]
PARAMS: dict[str, Any] = {
    "env": ENV_ID,
    "behavior.steps": 12_000,
    "behavior.random_steps": 1_000,
    "behavior.batch_size": 64,
    "behavior.checkpoint_steps": [4_000, 8_000, 12_000],
    "behavior.eval_episodes": 10,
    "behavior.log_interval": 1_000,
    "behavior.resume_every": 4_000,
    "behavior.dqn": {  # benchmarks/minigrid_images.py's, with a faster epsilon schedule
        "lr": 5.0e-4,
        "hidden": [64],
        "target_update_interval": 250,
        "epsilon_decay_steps": 5_000,
    },
    "collect.envs": {NAMESPACE: ENV_ID},
    "collect.kinds": KINDS,
    "collect.datasets.random.steps": 2_000,
    "collect.datasets.medium.steps": 2_000,
    "collect.datasets.expert.steps": 2_000,
    "collect.datasets.medium-expert.steps": 4_000,
    "collect.ref_scores": "measured",
    "collect.ref_episodes": 10,
    "collect.num_envs": 4,
    "collect.shard_steps": 1_000,
    "collect.workers": 1,
    "preprocess.datasets": ["expert"],
    "preprocess.normalize_observations": False,  # images are scaled by 1/255 on the device
    "train.algo": "discrete_bc",
    "train.dataset": "expert",
    "train.steps": 2_000,
    "train.eval_interval": 1_000,
    "train.eval_episodes": 20,
    "train.checkpoint_interval": 1_000,
    "algos.discrete_bc.hidden": [256, 256],
    "evaluate.episodes": 20,
    "evaluate.video": True,
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("minigrid")
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(with_changes(PARAMS), sort_keys=False))
    (root / "repo").mkdir()
    repo = copy_repo(root / "repo", params)
    sh(["dvc", "repro", "evaluate"], repo, env={"WANDB_MODE": "disabled"})
    return repo


def test_behaviour_dqn_learns_from_images_and_keeps_them_uint8(repo: Path) -> None:
    behavior = repo / f"models/behavior/{NAMESPACE}"
    returns = json.loads((behavior / "checkpoints.json").read_text())["checkpoints"]
    print(f"behaviour DQN greedy returns {returns}")
    assert max(returns.values()) > 0.9, returns  # the goal in a few steps (optimum 0.955)
    with h5py.File(behavior / "replay.h5") as f:
        assert f["observations/image"].dtype == np.uint8
        assert f["observations/image"].shape == (12_000, 7, 7, 3)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_stores_uint8_images(
    repo: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(repo / "data/datasets"))
    dataset = minari.load_dataset(f"{NAMESPACE}/{kind}-v0")
    image = gym.spaces.Box(0, 255, (7, 7, 3), np.uint8)
    assert dataset.observation_space == gym.spaces.Dict({"image": image})
    metrics = json.loads((repo / f"metrics/collect/{NAMESPACE}/{kind}.json").read_text())
    print(f"{kind}: {metrics['episodes']} episodes, return {metrics['return_mean']:.3f}")
    episode = next(dataset.iterate_episodes([0]))
    assert episode.observations["image"].dtype == np.uint8
    assert all(image.contains(o) for o in episode.observations["image"])


def test_transitions_hold_bytes_and_bc_reaches_the_goal(repo: Path) -> None:
    with h5py.File(repo / "data/transitions/expert.h5") as f:
        assert f["observations"].dtype == np.uint8 and f["observations"].shape[1] == 147
        header = json.loads(f.attrs["observation_keys"])
        assert header == {"keys": [["image", 147]], "image": [7, 7, 3]}
    metrics = json.loads((repo / "metrics/train.json").read_text())
    print(f"discrete BC: {json.dumps(metrics)}")
    flat = json.dumps(metrics)
    assert "success_rate" in flat
    rates = [v for k, v in _items(metrics) if k.endswith("success_rate")]
    assert rates and min(rates) >= 0.9, metrics


def _items(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(tree, dict):
        return [kv for k, v in tree.items() for kv in _items(v, f"{prefix}{k}/")]
    return [(prefix.rstrip("/"), tree)] if isinstance(tree, int | float) else []


def test_evaluate_stage_reports_success_and_records_a_video(repo: Path) -> None:
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    print(f"evaluate: {json.dumps(metrics)}")
    rates = [v for k, v in _items(metrics) if k.endswith("success_rate")]
    assert rates and min(rates) >= 0.9, metrics
    assert (repo / "videos/evaluate.mp4").stat().st_size > 0
