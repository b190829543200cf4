"""Dict observations through the behaviour stage and collection: the learner acts on the flat
vector of all keys, replay.h5 and every Minari dataset keep the dict (one array per key), and all
six kinds are written and loadable. An unsupported space fails first, naming env and space."""

from __future__ import annotations

from pathlib import Path

import h5py
import minari
import numpy as np
import pytest

from core.checkpoint import load_checkpoint
from datagen.behavior.config import BehaviorConfig, SACConfig
from datagen.behavior.spaces import env_layouts
from datagen.behavior.train import train_behavior
from datagen.collection.build import BuildPaths, build_dataset
from datagen.collection.config import CollectConfig, DatasetRecipe
from datagen.collection.reference import ReferenceScores
from offline_rl.tracking import RunLogger
from tests.datagen.dict_env import ENV_ID
from transitions.spaces import SpaceError

KINDS = ["random", "medium", "expert", "medium-replay", "full-replay", "medium-expert"]
BEHAVIOR = BehaviorConfig(
    steps=300,
    random_steps=200,
    batch_size=32,
    checkpoint_steps=(150, 300),
    eval_episodes=1,
    log_interval=50,
    resume_every=100,
    sac=SACConfig(hidden=(16, 16)),
)


def behave(root: Path) -> Path:
    def factory(run_id: str | None) -> RunLogger:
        return RunLogger.files_only(
            {k: root / f"{k}.csv" for k in ("train", "losses", "eval")}, run_id=run_id
        )

    out = root / "behavior"
    train_behavior(ENV_ID, BEHAVIOR, 0, out, factory, progress=False, resume_path=root / "r.pt")
    return out


def collect(root: Path, behavior: Path, kind: str) -> dict[str, float]:
    recipes = {
        k: DatasetRecipe(policy=k, steps=None if "replay" in k else 200 * (1 + (k == KINDS[-1])))
        for k in KINDS
    }
    config = CollectConfig(
        envs={"dictpointtest": ENV_ID},
        datasets=recipes,
        kinds=KINDS,
        num_envs=2,
        shard_steps=100,
        workers=1,
    )
    reference = ReferenceScores(0.0, 50.0, "measured")
    paths = BuildPaths(behavior, root / "datasets", root / "shards")
    return build_dataset(ENV_ID, "dictpointtest", kind, config, 0, reference, paths, {}, "tests")


@pytest.fixture(scope="module")
def behavior(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return behave(tmp_path_factory.mktemp("dict"))


def test_behaviour_replay_keeps_the_dict_and_checkpoints_name_its_keys(behavior: Path) -> None:
    with h5py.File(behavior / "replay.h5") as f:
        for key in ("observations", "next_observations"):
            assert isinstance(f[key], h5py.Group) and sorted(f[key]) == ["goal", "position"]
            assert all(f[key][name].shape == (300, 2) for name in f[key])
        # an episode's next observation is the following step's observation
        ends = f["terminals"][()] | f["timeouts"][()]
        within = np.flatnonzero(~ends[:-1])
        for name in ("goal", "position"):
            obs, nxt = f["observations"][name][()], f["next_observations"][name][()]
            np.testing.assert_array_equal(nxt[within], obs[within + 1])
    checkpoint = load_checkpoint(behavior / "step_300.pt")
    assert checkpoint["obs_dim"] == 4 and "goal" in checkpoint["observation_keys"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_a_minari_dataset_with_dict_observations(
    kind: str, behavior: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = collect(tmp_path, behavior, kind)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    dataset = minari.load_dataset(f"dictpointtest/{kind}-v0")
    assert dataset.total_steps == summary["steps"]
    assert list(dataset.observation_space.keys()) == ["goal", "position"]  # type: ignore[attr-defined]
    for episode in dataset.iterate_episodes():
        assert sorted(episode.observations) == ["goal", "position"]
        assert all(v.shape == (len(episode) + 1, 2) for v in episode.observations.values())
        assert all(dataset.action_space.contains(a) for a in episode.actions)
        for i in range(len(episode) + 1):
            obs = {k: v[i] for k, v in episode.observations.items()}
            assert dataset.observation_space.contains(obs)


def h5_arrays(path: Path) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    with h5py.File(path) as f:
        f.visititems(
            lambda n, o: found.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None
        )
    return found


def test_random_kind_repeats_exactly(behavior: Path, tmp_path: Path) -> None:
    arrays = []
    for run in ("a", "b"):
        collect(tmp_path / run, behavior, "random")
        arrays.append(
            h5_arrays(tmp_path / run / "datasets/dictpointtest/random-v0/data/main_data.hdf5")
        )
    assert arrays[0].keys() == arrays[1].keys() and "episode_0/observations/goal" in arrays[0]
    for key, value in arrays[0].items():
        np.testing.assert_array_equal(value, arrays[1][key], err_msg=key)


def test_an_unsupported_space_fails_first_naming_env_and_space(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match=r"Blackjack-v1 observation space: Tuple"):
        env_layouts("Blackjack-v1")
    with pytest.raises(SpaceError, match="Blackjack-v1"):
        train_behavior(
            "Blackjack-v1",
            BEHAVIOR,
            0,
            tmp_path / "out",
            lambda _: RunLogger.files_only({}),
            progress=False,
        )
    assert not (tmp_path / "out").exists()
