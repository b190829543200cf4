"""A goal-reaching maze with Dict observations through the whole pipeline: `dvc repro` with
collect.envs {pointmaze_umaze: PointMaze_UMaze-v3} (gymnasium-robotics) and the scripted waypoint
controller as the behaviour (`behavior.learner: waypoint`, as D4RL made maze2d) builds the six
kinds, preprocess flattens the declared keys `observation` + `desired_goal`, TD3+BC trains on
medium-expert and evaluation reports the maze's success rate beside return and normalised score.

Runs `dvc` in a throwaway copy of the repository on tiny budgets (tests/pipelines/stage_runner.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import minari
import numpy as np
import pytest

from tests.pipelines.stage_runner import copy_repo_with_changes, sh

pytestmark = pytest.mark.slow

ENV = "PointMaze_UMaze-v3"
KINDS = ["random", "medium", "expert", "medium-replay", "full-replay", "medium-expert"]
SMALL: dict[str, Any] = {
    "env": ENV,
    "behavior.learner": "waypoint",
    "behavior.steps": 6000,
    "behavior.random_steps": 0,
    "behavior.checkpoint_steps": [1500, 3000, 4500, 6000],
    "behavior.eval_episodes": 5,
    "behavior.resume_every": 1500,
    "collect.envs": {"pointmaze_umaze": ENV},
    "collect.kinds": KINDS,
    "collect.datasets.random.steps": 1500,
    "collect.datasets.medium.steps": 1500,
    "collect.datasets.expert.steps": 1500,
    "collect.datasets.medium-expert.steps": 3000,
    "collect.ref_scores": "measured",
    "collect.ref_episodes": 5,
    "collect.num_envs": 4,
    "collect.shard_steps": 1500,
    "collect.workers": 1,
    "preprocess.datasets": ["medium-expert"],
    "preprocess.observation_keys": ["observation", "desired_goal"],
    "train.dataset": "medium-expert",
    "train.algo": "td3_bc",
    "train.steps": 1000,
    "evaluate.episodes": 4,
    "evaluate.video": False,
    "wandb.tags": ["pointmaze"],
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = copy_repo_with_changes(tmp_path_factory.mktemp("pointmaze"), SMALL)
    sh(["dvc", "repro", "evaluate"], repo, env={"WANDB_MODE": "disabled"})
    return repo


def test_waypoint_checkpoints_improve_as_their_noise_falls(repo: Path) -> None:
    index = json.loads((repo / "models/behavior/pointmaze_umaze/checkpoints.json").read_text())
    assert index["env_id"] == ENV and index["algo"] == "waypoint"
    returns = [index["checkpoints"][f"step_{s}"] for s in (1500, 3000, 4500, 6000)]
    assert returns[-1] > returns[0], returns
    with h5py.File(repo / "models/behavior/pointmaze_umaze/replay.h5") as f:
        assert set(f["observations"]) == {"observation", "achieved_goal", "desired_goal"}
        assert f["actions"].shape == (6000, 2)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_a_minari_dataset_of_dict_observations(
    repo: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(repo / "data/datasets"))
    dataset = minari.load_dataset(f"pointmaze_umaze/{kind}-v0")
    assert dataset.env_spec is not None and dataset.env_spec.id == ENV
    metrics = json.loads((repo / f"metrics/collect/pointmaze_umaze/{kind}.json").read_text())
    assert dataset.total_steps == metrics["steps"]
    for episode in dataset.iterate_episodes():
        assert set(episode.observations) == {"observation", "achieved_goal", "desired_goal"}
        assert episode.observations["observation"].shape == (len(episode) + 1, 4)
        assert all(dataset.action_space.contains(a) for a in episode.actions)
    if kind != "random":
        assert "waypoint controller" in dataset.storage.metadata["algorithm_name"]


def test_expert_data_reaches_the_goal_far_more_than_random(repo: Path) -> None:
    score = {
        kind: json.loads((repo / f"metrics/collect/pointmaze_umaze/{kind}.json").read_text())
        for kind in ("random", "medium", "expert")
    }
    means = {kind: s["return_mean"] for kind, s in score.items()}
    assert means["expert"] > means["medium"] > means["random"], means


def test_transitions_hold_the_declared_keys(repo: Path) -> None:
    with h5py.File(repo / "data/transitions/medium-expert.h5") as f:
        assert f["observations"].shape[1] == 6  # observation (4) + desired_goal (2)
        assert np.isfinite(f["observations"][:]).all()


def test_evaluation_reports_success_rate(repo: Path) -> None:
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    flat = json.dumps(metrics)
    assert "success_rate" in flat, metrics
    assert "normalized_score" in flat or "normalised" in flat, metrics


def test_minaris_own_cli_lists_and_shows_every_kind(repo: Path) -> None:
    # wide enough that rich does not cut the names short
    env = {"MINARI_DATASETS_PATH": str(repo / "data/datasets"), "COLUMNS": "200"}
    listed = sh(["minari", "list", "local"], repo, env=env)
    for kind in KINDS:
        assert f"pointmaze_umaze/{kind}" in listed, listed
    shown = sh(["minari", "show", "pointmaze_umaze/medium-v0"], repo, env=env)
    assert "waypoint controller (medium)" in shown and ENV in shown, shown
