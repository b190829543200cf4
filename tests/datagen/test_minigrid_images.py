"""MiniGrid's image observations through the data stages and into discrete BC: episodes of an
expert written by the collect stage's Minari writer keep the image as uint8 (N, 7, 7, 3), which
plain h5py and `minari.load_dataset` read back as the env gave it; preprocessing keeps the bytes
(uint8 rows of 147) and refuses to mean/std-normalise them; BC on the expert's episodes, through
the CNN encoder, reaches the goal far more often than a uniform random policy.

The expert is scripted (turn towards the goal, then walk), so the test needs no DQN run; the
DQN-trained expert and its figures are in docs/datasets.md."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import minari
import numpy as np
import pytest
import torch

from core.checkpoint import load_checkpoint
from core.envs import make_env
from datagen.behavior.config import BehaviorConfig, DQNConfig
from datagen.behavior.policies import load_policy
from datagen.collection.minari_writer import DatasetInfo, dataset_dir, write_dataset
from datagen.collection.rollouts import Episode
from datagen.collection.validate import validate_dataset
from datagen.preprocessing.config import PreprocessConfig
from datagen.preprocessing.minari_reader import PreprocessError
from datagen.preprocessing.preprocess import preprocess
from offline_rl.algos.config import DiscreteBCConfig
from offline_rl.algos.registry import make_algorithm
from offline_rl.buffer import ReplayBuffer
from offline_rl.evaluation import AgentPolicy, rollouts
from tests.datagen.minari_spaces import _datasets_path
from tests.datagen.test_behavior_resume import Killed, assert_same_outputs
from tests.datagen.test_behavior_resume import run as run_behavior
from transitions.loader import load_transitions
from transitions.metadata import read_meta
from transitions.spaces import ObservationLayout, action_layout, observation_layout

ENV_ID = "MiniGrid-Empty-Random-5x5-v0"  # random start cell and heading: BC must read the image
DATASET = "minigrid/expert-v0"
FORWARD, LEFT, RIGHT = 2, 0, 1
HEADINGS = {(1, 0): 0, (0, 1): 1, (-1, 0): 2, (0, -1): 3}  # MiniGrid's agent_dir of a step


def expert_action(env: object) -> int:
    """Towards the goal at (3, 3): along x first, then y; turning right until heading there."""
    grid = env.unwrapped  # type: ignore[attr-defined]
    x, y = grid.agent_pos
    step = (np.sign(3 - x), 0) if x != 3 else (0, np.sign(3 - y))
    return FORWARD if HEADINGS[step] == grid.agent_dir else RIGHT


def expert_episodes(count: int, seed: int) -> list[Episode]:
    env = make_env(ENV_ID)
    episodes = []
    for k in range(count):
        obs, _ = env.reset(seed=seed + k)
        episode = Episode(seed=seed + k, observations=[obs])
        done = False
        while not done:
            action = expert_action(env)
            obs, reward, terminated, truncated, _ = env.step(action)
            episode.actions.append(np.asarray(action, dtype=np.int64))
            episode.rewards.append(float(reward))
            episode.terminations.append(bool(terminated))
            episode.truncations.append(bool(truncated) and not terminated)
            episode.observations.append(obs)
            done = terminated or truncated
        episodes.append(episode)
    return episodes


@pytest.fixture(scope="module")
def expert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Episode]]:
    root = tmp_path_factory.mktemp("datasets")
    episodes = expert_episodes(60, seed=0)
    info = DatasetInfo(DATASET, ENV_ID, "scripted expert", "test", "none")
    written = write_dataset(root, info, iter(episodes), None)
    env = make_env(ENV_ID)
    validate_dataset(
        dataset_dir(root, DATASET),
        written.steps,
        observation_layout(env.observation_space),
        action_layout(env.action_space),
        written.stats()["return_mean"],
    )
    return root, episodes


def test_images_are_stored_uint8_and_read_back_by_h5py_and_minari(
    expert: tuple[Path, list[Episode]],
) -> None:
    root, episodes = expert
    first = episodes[0]
    with h5py.File(dataset_dir(root, DATASET) / "data" / "main_data.hdf5") as f:
        images = f["episode_0/observations/image"]
        assert images.dtype == np.uint8 and images.shape == (len(first) + 1, 7, 7, 3)
        assert set(f["episode_0/observations"]) == {"image"}  # no mission, no direction
        assert np.array_equal(images[()], np.stack([o["image"] for o in first.observations]))
    with _datasets_path(root), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dataset = minari.load_dataset(DATASET)
        episode = next(dataset.iterate_episodes([0]))
    assert episode.observations["image"].dtype == np.uint8
    assert np.array_equal(episode.observations["image"][-1], first.observations[-1]["image"])


def test_preprocess_keeps_the_bytes_and_refuses_to_normalise_them(
    expert: tuple[Path, list[Episode]], tmp_path: Path
) -> None:
    root, episodes = expert
    with pytest.raises(PreprocessError, match=r"normalize_observations is true, but .* uint8"):
        preprocess([(DATASET, dataset_dir(root, DATASET))], tmp_path / "x.h5", PreprocessConfig())
    out = tmp_path / "expert.h5"
    config = PreprocessConfig(normalize_observations=False)
    preprocess([(DATASET, dataset_dir(root, DATASET))], out, config, env_id=ENV_ID)
    meta = read_meta(out)
    assert meta.observation_image == (7, 7, 3) and meta.observations.key_names == ["image"]
    with h5py.File(out) as f:
        assert f["observations"].dtype == np.uint8 and f["observations"].shape[1] == 147
        first = episodes[0].observations[0]["image"]
        assert np.array_equal(f["observations"][0].reshape(7, 7, 3), first)
    data = load_transitions(out)
    assert data.observations.dtype == torch.uint8 and data.packed is not None
    assert data.packed.shape[1] == 4  # actions, rewards, dones, next_actions: no pixels


@pytest.mark.slow  # ~30-60 s on one core
def test_discrete_bc_on_the_expert_images_beats_random_by_far(
    expert: tuple[Path, list[Episode]], tmp_path: Path
) -> None:
    root, _ = expert
    out = tmp_path / "expert.h5"
    config = PreprocessConfig(normalize_observations=False)
    preprocess([(DATASET, dataset_dir(root, DATASET))], out, config, env_id=ENV_ID)
    data = load_transitions(out)
    torch.manual_seed(0)
    bc_config = DiscreteBCConfig(hidden=(64,)).with_default_lr(1e-3)
    algo = make_algorithm("discrete_bc", data.meta.observations, 7, bc_config, "cpu", [0])
    buffer = ReplayBuffer.from_transitions(data)
    for _ in range(1500):
        algo.update(buffer.sample(64))
    policy = AgentPolicy.of(algo, data.meta, torch.device("cpu"))
    bc = rollouts(ENV_ID, policy, 30, seed=10_000, num_envs=10)
    rng = np.random.default_rng(0)
    uniform = rollouts(ENV_ID, lambda obs: rng.integers(0, 7, len(obs["image"])), 30, 10_000)
    assert bc.successes is not None and uniform.successes is not None
    bc_rate, random_rate = float(np.mean(bc.successes)), float(np.mean(uniform.successes))
    print(f"BC success {bc_rate:.2f}, uniform random {random_rate:.2f}")
    assert bc_rate >= 0.9 and bc_rate > random_rate + 0.3


TINY_DQN = BehaviorConfig(
    steps=300,
    random_steps=100,
    batch_size=16,
    checkpoint_steps=(150, 300),
    eval_episodes=1,
    log_interval=50,
    resume_every=50,
    dqn=DQNConfig(hidden=(16,), target_update_interval=50, epsilon_decay_steps=100),
)


def test_behaviour_dqn_on_images_keeps_bytes_and_resumes_to_the_same_outputs(
    tmp_path: Path,
) -> None:
    """The DQN learns from the image through its CNN; its buffer holds the bytes (uint8), the
    replay file and checkpoints keep them, and a killed run resumes to identical outputs."""
    straight = run_behavior(tmp_path / "a", config=TINY_DQN, env_id="MiniGrid-Empty-5x5-v0")
    with h5py.File(straight / "replay.h5") as f:
        images = f["observations/image"]
        assert images.dtype == np.uint8 and images.shape == (300, 7, 7, 3)
        assert set(f["observations"]) == {"image"}
    checkpoint = load_checkpoint(straight / "step_300.pt")
    assert ObservationLayout.from_json(checkpoint["observation_keys"]) == ObservationLayout(
        147, (("image", 147),), (7, 7, 3)
    )
    assert load_policy(straight / "step_300.pt").layout.image == (7, 7, 3)
    with pytest.raises(Killed):
        run_behavior(tmp_path / "b", config=TINY_DQN, env_id="MiniGrid-Empty-5x5-v0", kill_at=200)
    state = load_checkpoint(tmp_path / "b" / "resume.pt")
    assert state["buffer"]["observations"].dtype == torch.uint8
    resumed = run_behavior(tmp_path / "b", config=TINY_DQN, env_id="MiniGrid-Empty-5x5-v0")
    assert_same_outputs(straight, resumed)
