"""A Discrete-action environment through the data stages: `dvc repro collect` with
collect.envs {cartpole: CartPole-v1} trains the DQN behaviour policy, measures reference scores
(D4RL published none for CartPole, so `ref_scores: d4rl` measures them and says so) and writes all
six kinds, each a Minari dataset with a Discrete action space whose every action and observation
lies in its spaces.

Runs `dvc` in a throwaway copy of the repository on tiny budgets (tests/pipelines/stage_runner.py).
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

from tests.pipelines.stage_runner import copy_repo_with_changes, sh

pytestmark = pytest.mark.slow

KINDS = ["random", "medium", "expert", "medium-replay", "full-replay", "medium-expert"]
SMALL: dict[str, Any] = {
    "env": "CartPole-v1",
    "behavior.steps": 4000,
    "behavior.random_steps": 1000,
    "behavior.batch_size": 64,
    "behavior.checkpoint_steps": [2000, 4000],
    "behavior.eval_episodes": 3,
    "behavior.log_interval": 500,
    "behavior.resume_every": 1000,
    "behavior.dqn": {"hidden": [64, 64], "lr": 1.0e-3},  # a tiny budget wants a faster rate
    "collect.envs": {"cartpole": "CartPole-v1"},
    "collect.kinds": KINDS,
    "collect.datasets.random.steps": 400,
    "collect.datasets.medium.steps": 400,
    "collect.datasets.expert.steps": 400,
    "collect.datasets.medium-expert.steps": 800,
    "collect.ref_scores": "d4rl",
    "collect.ref_episodes": 5,
    "collect.num_envs": 2,
    "collect.shard_steps": 200,
    "collect.workers": 1,
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = copy_repo_with_changes(tmp_path_factory.mktemp("cartpole"), SMALL)
    sh(["dvc", "repro", "collect"], repo, env={"WANDB_MODE": "disabled"})
    return repo


def test_dqn_behaviour_checkpoints_and_integer_replay(repo: Path) -> None:
    behavior = repo / "models/behavior/cartpole"
    index = json.loads((behavior / "checkpoints.json").read_text())
    assert index["env_id"] == "CartPole-v1" and list(index["checkpoints"]) == [
        "step_2000",
        "step_4000",
    ]
    with h5py.File(behavior / "replay.h5") as f:
        assert f["actions"].dtype == np.int64 and f["actions"].shape == (4000,)


def test_reference_scores_are_measured_where_d4rl_has_none(repo: Path) -> None:
    reference = json.loads((repo / "metrics/reference/cartpole.json").read_text())
    assert reference["ref_score_source"] == "measured" and reference["d4rl_unavailable"]
    assert reference["ref_max_score"] > reference["ref_min_score"] > 0


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_a_minari_dataset_with_discrete_actions(
    repo: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(repo / "data/datasets"))
    dataset = minari.load_dataset(f"cartpole/{kind}-v0")
    assert dataset.action_space == gym.spaces.Discrete(2)
    assert dataset.env_spec is not None and dataset.env_spec.id == "CartPole-v1"
    metrics = json.loads((repo / f"metrics/collect/cartpole/{kind}.json").read_text())
    assert dataset.total_steps == metrics["steps"]
    assert dataset.storage.metadata["ref_score_source"] == "measured"
    returns = []
    for episode in dataset.iterate_episodes():
        assert episode.actions.dtype == np.int64 and episode.actions.shape == (len(episode),)
        assert all(dataset.action_space.contains(a) for a in episode.actions)
        assert all(dataset.observation_space.contains(o) for o in episode.observations)
        assert episode.terminations[-1] or episode.truncations[-1]
        returns.append(float(np.sum(episode.rewards)))
    assert np.isclose(np.mean(returns), metrics["return_mean"])
    env = dataset.recover_environment()
    assert env.action_space == dataset.action_space


def test_behaviour_policies_beat_random_in_their_datasets(repo: Path) -> None:
    score = {
        kind: json.loads((repo / f"metrics/collect/cartpole/{kind}.json").read_text())
        for kind in ("random", "expert")
    }
    assert score["expert"]["return_mean"] > 2 * score["random"]["return_mean"], score
