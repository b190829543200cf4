"""The scripted maze behaviour (`behavior.learner: waypoint`): its planner agrees with the maze's
own cell geometry, the noise-free controller reaches the goal, a checkpoint is a collection policy
that repeats under a seed, and a behaviour run keeps the stage's contract (checkpoints whose
returns rise as the noise falls, Dict replay, resume to the same outputs) without touching the
fingerprint of SAC/DQN runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from core.checkpoint import save_checkpoint
from core.envs import make_env
from datagen.behavior.config import BehaviorConfig, WaypointConfig
from datagen.behavior.policies import WaypointPolicy, load_policy, waypoint_checkpoint
from datagen.behavior.run import BehaviorRun, behavior_fingerprint
from datagen.behavior.spaces import env_layouts
from datagen.behavior.waypoint import MazePlan, WaypointController, noise_at
from tests.datagen.test_behavior_resume import Killed, assert_same_outputs
from tests.datagen.test_behavior_resume import run as run_behavior
from transitions.spaces import SpaceError

ENV_ID = "PointMaze_UMaze-v3"
TINY = BehaviorConfig(
    learner="waypoint",
    steps=1_200,
    random_steps=0,
    checkpoint_steps=(300, 1_200),
    eval_episodes=3,
    resume_every=300,
)


def run(workdir: Path, kill_at: int | None = None) -> Path:
    return run_behavior(workdir, kill_at=kill_at, config=TINY, env_id=ENV_ID, seed=1)


def test_plan_cells_and_centres_match_the_maze() -> None:
    plan = MazePlan(ENV_ID)
    env = make_env(ENV_ID)
    maze = env.unwrapped.maze  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    for _ in range(50):
        obs, _ = env.reset(seed=int(rng.integers(1_000)))
        xy = obs["observation"][:2]
        cell = plan.cell(xy)
        assert cell == tuple(int(v) for v in maze.cell_xy_to_rowcol(xy))
        np.testing.assert_allclose(plan.center(cell), maze.cell_rowcol_to_xy(np.array(cell)))
    env.close()


def test_plan_heads_round_the_wall() -> None:
    plan = MazePlan(ENV_ID)  # U-maze: row 1 open, row 2 open only at column 3, row 3 open
    assert plan.next_cell((3, 1), (1, 1)) == (3, 2)
    assert plan.next_cell((3, 3), (1, 1)) == (2, 3)
    assert plan.next_cell((1, 2), (1, 1)) == (1, 1)


def test_noise_free_controller_reaches_the_goal() -> None:
    env = make_env(ENV_ID)
    controller = WaypointController(ENV_ID, WaypointConfig())
    successes = []
    for episode in range(10):
        obs, _ = env.reset(seed=episode)
        done, info = False, dict[str, Any]()
        while not done:
            obs, _, terminated, truncated, info = env.step(controller(obs)[0])
            done = terminated or truncated
        successes.append(bool(info["success"]))
    env.close()
    assert np.mean(successes) >= 0.9, successes


def test_checkpoint_policy_repeats_under_a_seed_and_drops_its_noise_when_deterministic(
    tmp_path: Path,
) -> None:
    path = tmp_path / "step_10.pt"
    _, observation = env_layouts(ENV_ID)
    save_checkpoint(path, waypoint_checkpoint(ENV_ID, WaypointConfig(), 1.0, 10, observation))
    env = make_env(ENV_ID)
    obs, _ = env.reset(seed=0)
    batch = {key: np.stack([value, value]) for key, value in obs.items()}
    policy = load_policy(path, seed=7)
    assert isinstance(policy, WaypointPolicy)
    first = policy(batch)
    again = load_policy(path, seed=7)(batch)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (2, 2) and np.abs(first).max() <= 1.0
    assert not np.array_equal(first[0], first[1])  # each row draws its own noise
    clean = load_policy(path, deterministic=True)(batch)
    np.testing.assert_array_equal(clean[0], clean[1])
    env.close()


def test_noise_falls_linearly_over_the_run() -> None:
    config = WaypointConfig(noise_start=4.0, noise_end=0.0)
    assert [noise_at(config, step, 100) for step in (0, 50, 100, 200)] == [4.0, 2.0, 0.0, 0.0]


def test_run_keeps_the_behaviour_contract(tmp_path: Path) -> None:
    out = run(tmp_path)
    index = json.loads((out / "checkpoints.json").read_text())
    assert index["algo"] == "waypoint" and set(index["checkpoints"]) == {"step_300", "step_1200"}
    assert index["checkpoints"]["step_1200"] > index["checkpoints"]["step_300"]
    with h5py.File(out / "replay.h5") as f:
        assert set(f["observations"]) == {"observation", "achieved_goal", "desired_goal"}
        assert f["actions"].shape == (1_200, 2) and np.abs(f["actions"][()]).max() <= 1.0


@pytest.mark.slow  # three short runs: seconds
def test_killed_waypoint_run_resumes_to_identical_outputs(tmp_path: Path) -> None:
    straight = run(tmp_path / "straight")
    with pytest.raises(Killed):
        run(tmp_path / "killed", kill_at=1_000)
    assert_same_outputs(straight, run(tmp_path / "killed"))


def test_fingerprints() -> None:
    """An auto (SAC/DQN) run's fingerprint ignores the waypoint section (and so is what it was
    before the waypoint learner existed); a waypoint run's depends on it."""
    auto = BehaviorConfig()
    other_gains = auto.model_copy(update={"waypoint": WaypointConfig(p_gain=3.0)})
    assert behavior_fingerprint("Hopper-v5", auto, 0) == behavior_fingerprint(
        "Hopper-v5", other_gains, 0
    )
    scripted = auto.model_copy(update={"learner": "waypoint"})
    assert behavior_fingerprint(ENV_ID, scripted, 0) != behavior_fingerprint(
        ENV_ID, scripted.model_copy(update={"waypoint": WaypointConfig(p_gain=3.0)}), 0
    )
    assert behavior_fingerprint(ENV_ID, scripted, 0) != behavior_fingerprint(ENV_ID, auto, 0)


@pytest.mark.parametrize(
    ("env_id", "says"), [("Hopper-v5", "needs a maze"), ("CartPole-v1", "Discrete")]
)
def test_waypoint_learner_refuses_envs_it_cannot_steer(env_id: str, says: str) -> None:
    with pytest.raises(SpaceError, match=f"{env_id}: behavior.learner waypoint .*{says}"):
        BehaviorRun(env_id, TINY, seed=0)
