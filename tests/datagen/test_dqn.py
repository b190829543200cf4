"""The Double DQN behaviour learner (Discrete action spaces): it learns CartPole-v1 well above a
random policy on a small budget, keeps the behaviour stage's contract (checkpoints with evaluated
returns, replay.h5, target-return stop) and resumes a killed run to the very same outputs."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from core.checkpoint import load_checkpoint
from datagen.behavior.config import BehaviorConfig, DQNConfig
from datagen.behavior.dqn import DQN
from datagen.behavior.run import behavior_fingerprint
from offline_rl.buffer import ReplayBuffer
from tests.datagen.test_behavior_resume import Killed, assert_same_outputs
from tests.datagen.test_behavior_resume import run as run_behavior

ENV_ID = "CartPole-v1"
RANDOM_RETURN = 22.0  # CartPole-v1's mean return under uniform random actions (about 22)
TINY = BehaviorConfig(
    steps=400,
    random_steps=100,
    batch_size=32,
    checkpoint_steps=(200, 400),
    eval_episodes=1,
    log_interval=50,
    resume_every=50,
    dqn=DQNConfig(hidden=(16, 16), target_update_interval=50, epsilon_decay_steps=200),
)


def run(
    workdir: Path, config: BehaviorConfig = TINY, kill_at: int | None = None, seed: int = 3
) -> Path:
    return run_behavior(workdir, kill_at=kill_at, config=config, env_id=ENV_ID, seed=seed)


@pytest.mark.slow  # 12,000 steps of DQN: about 20 s of CPU, a minute or two at nice 19
def test_dqn_learns_cartpole_well_above_random(tmp_path: Path) -> None:
    config = BehaviorConfig(
        steps=12_000,
        random_steps=1_000,
        checkpoint_steps=(3_000, 6_000, 9_000, 12_000),
        eval_episodes=5,
        log_interval=1_000,
        resume_every=4_000,
    )  # the behaviour defaults otherwise, behavior.dqn's included
    started = time.perf_counter()
    out = run(tmp_path, config, seed=0)
    returns = json.loads((out / "checkpoints.json").read_text())["checkpoints"]
    print(f"DQN CartPole-v1 checkpoints {returns} in {time.perf_counter() - started:.0f} s")
    assert max(returns.values()) > 5 * RANDOM_RETURN, returns
    checkpoint = load_checkpoint(out / "step_12000.pt")
    assert checkpoint["algo"] == "dqn" and checkpoint["num_actions"] == 2
    assert len(checkpoint["eval_returns"]) == 5


def test_replay_holds_the_env_actions_as_integers(tmp_path: Path) -> None:
    out = run(tmp_path)
    with h5py.File(out / "replay.h5") as f:
        actions = f["actions"][()]
        assert actions.dtype == np.int64 and actions.shape == (400,)
        assert set(np.unique(actions)) == {0, 1}
        assert f["observations"].shape == (400, 4) and f["rewards"].shape == (400,)
        ends = f["terminals"][()] | f["timeouts"][()]
        assert ends[-1] and ends.sum() > 5  # CartPole's random episodes are short
    assert json.loads((out / "checkpoints.json").read_text())["steps"] == 400


@pytest.mark.slow  # two short DQN runs and a resumed one: seconds of CPU
def test_killed_dqn_run_resumes_to_identical_outputs(tmp_path: Path) -> None:
    straight = run(tmp_path / "straight")
    with pytest.raises(Killed):
        run(tmp_path / "killed", kill_at=300)
    state = load_checkpoint(tmp_path / "killed" / "resume.pt")
    assert not state["finished"] and 100 <= state["step"] < 300
    assert_same_outputs(straight, run(tmp_path / "killed"))


def test_target_return_stops_the_dqn_at_the_first_checkpoint_reaching_it(tmp_path: Path) -> None:
    out = run(tmp_path, TINY.model_copy(update={"target_return": -1.0}))
    index = json.loads((out / "checkpoints.json").read_text())
    assert index["steps"] == 200 and list(index["checkpoints"]) == ["step_200"]
    shutil.rmtree(out)  # the finished state rewrites the outputs without training
    run(tmp_path, TINY.model_copy(update={"target_return": -1.0}), kill_at=1)
    assert json.loads((out / "checkpoints.json").read_text()) == index


def test_fingerprint_ignores_the_learner_the_action_space_does_not_use() -> None:
    other_dqn = TINY.model_copy(update={"dqn": DQNConfig(lr=0.5)})
    assert behavior_fingerprint("Hopper-v5", TINY, 0) == behavior_fingerprint(
        "Hopper-v5", other_dqn, 0
    )
    assert behavior_fingerprint(ENV_ID, TINY, 0, discrete=True) != behavior_fingerprint(
        ENV_ID, other_dqn, 0, discrete=True
    )


def test_double_dqn_target_and_periodic_target_copy() -> None:
    agent = DQN(3, 2, DQNConfig(hidden=(8,), target_update_interval=2), torch.device("cpu"))
    buffer = ReplayBuffer(3, 2, 16, action_shape=())
    assert buffer.actions.shape == (16,)
    rows = torch.randn(16, 3)
    buffer.add(rows, torch.randint(0, 2, (16,)).float(), torch.ones(16), rows, torch.zeros(16))
    before = {k: v.clone() for k, v in agent.q_target.state_dict().items()}
    agent.update(buffer.sample(8))
    assert all(torch.equal(v, before[k]) for k, v in agent.q_target.state_dict().items())
    agent.update(buffer.sample(8))
    online, target = agent.q.state_dict(), agent.q_target.state_dict()
    assert all(torch.equal(online[k], target[k]) for k in online)
