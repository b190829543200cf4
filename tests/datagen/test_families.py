"""The D4RL families from a real (tiny) behaviour run: sizes, boundaries, replay prefixes,
medium-expert composition, reference scores, determinism across runs, workers and backends."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import minari
import numpy as np
import pytest

from datagen.behavior.config import BehaviorConfig, SACConfig
from datagen.behavior.spaces import env_layouts
from datagen.behavior.train import train_behavior
from datagen.collection.backends import BackendConfig
from datagen.collection.config import CollectConfig, DatasetRecipe
from datagen.collection.families import plan_dataset, plan_episodes
from datagen.collection.minari_writer import DatasetInfo, write_dataset
from datagen.collection.reference import d4rl_reference
from datagen.collection.validate import validate_dataset
from datagen.sources.minari_folder import read_metadata
from offline_rl.tracking import RunLogger
from tests.datagen.ray_cluster import local_ray_cluster
from transitions.spaces import ActionLayout, ObservationLayout

ENV_ID = "Hopper-v5"
STEPS = 600


@pytest.fixture(scope="module")
def behavior_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("behavior") / "behavior"
    config = BehaviorConfig(
        steps=800,
        random_steps=400,
        batch_size=64,
        checkpoint_steps=(400, 800),
        eval_episodes=1,
        sac=SACConfig(hidden=(32, 32)),
    )
    logger = RunLogger.files_only({c: out.parent / f"{c}.csv" for c in ("train", "losses", "eval")})
    train_behavior(
        ENV_ID, config, seed=0, out_dir=out, logger_factory=lambda _: logger, progress=False
    )
    return out


def collect_config(**overrides: Any) -> CollectConfig:
    datasets = {
        "random": DatasetRecipe(policy="random", steps=STEPS),
        "medium": DatasetRecipe(policy="medium", steps=STEPS),
        "expert": DatasetRecipe(policy="expert", steps=STEPS),
        "medium-replay": DatasetRecipe(policy="medium-replay"),
        "full-replay": DatasetRecipe(policy="full-replay"),
        "medium-expert": DatasetRecipe(policy="medium-expert", steps=2 * STEPS),
    }
    fields: dict[str, Any] = {
        "datasets": datasets,
        "kinds": list(datasets),
        "num_envs": 3,
        "shard_steps": 250,
        "workers": 1,
    }
    return CollectConfig(**(fields | overrides))


def layouts() -> tuple[ObservationLayout, ActionLayout]:
    action, observation = env_layouts(ENV_ID)
    return observation, action


def build(root: Path, behavior_dir: Path, kind: str, **overrides: Any) -> Path:
    config = collect_config(**overrides)
    plan = plan_dataset(ENV_ID, kind, config, behavior_dir, seed=0)
    backend = BackendConfig(config.backend, config.workers, config.ray_address)
    info = DatasetInfo(f"hopper/{kind}-v0", ENV_ID, plan.algorithm_name, "test", "tests")
    episodes = plan_episodes(plan, behavior_dir, root / "shards" / kind, backend)
    summary = write_dataset(root, info, episodes, d4rl_reference(ENV_ID))
    path = root / f"hopper/{kind}-v0"
    validate_dataset(path, summary.steps, *layouts(), summary.stats()["return_mean"])
    return path


def episodes_of(path: Path) -> list[dict[str, Any]]:
    with h5py.File(path / "data" / "main_data.hdf5", "r") as f:
        names = sorted(f, key=lambda name: int(name.split("_")[1]))
        return [
            {key: value[()] for key, value in f[name].items() if isinstance(value, h5py.Dataset)}
            | {"seed": f[name].attrs.get("seed")}
            for name in names
        ]


def assert_same_episodes(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys() and x["seed"] == y["seed"]
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, behavior_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("datasets")
    kinds = ("random", "medium", "expert", "medium-replay", "full-replay", "medium-expert")
    return {kind: build(root, behavior_dir, kind) for kind in kinds}


@pytest.mark.parametrize("kind", ["random", "medium", "expert", "medium-expert"])
def test_sampled_kinds_have_exact_steps_and_one_boundary_per_episode(
    built: dict[str, Path], kind: str
) -> None:
    episodes = episodes_of(built[kind])
    expected = 2 * STEPS if kind == "medium-expert" else STEPS
    assert sum(len(e["rewards"]) for e in episodes) == expected
    for e in episodes:
        ends = e["terminations"] | e["truncations"]
        assert ends[-1] and not ends[:-1].any()
        assert not (e["terminations"][-1] and e["truncations"][-1])  # kept distinct
        assert e["seed"] is not None
    # Shard boundaries fall at 250 and 500 steps: episodes end exactly there, as timeouts.
    cumulative = np.cumsum([len(e["rewards"]) for e in episodes[: len(episodes)]])
    assert {250, 500} <= set(cumulative.tolist())


def test_replay_kinds_are_prefixes_of_the_training_buffer(
    built: dict[str, Path], behavior_dir: Path
) -> None:
    space = gym.make(ENV_ID).action_space
    assert isinstance(space, gym.spaces.Box)
    with h5py.File(behavior_dir / "replay.h5", "r") as f:
        buffer = {key: f[key][()] for key in f}
    medium_step = plan_dataset(
        ENV_ID, "medium-replay", collect_config(), behavior_dir, 0
    ).replay_steps
    assert medium_step in (400, 800)
    for kind, steps in (("medium-replay", medium_step), ("full-replay", 800)):
        episodes = episodes_of(built[kind])
        actions = np.concatenate([e["actions"] for e in episodes])
        assert actions.shape[0] == steps
        unit = buffer["actions"][:steps]
        np.testing.assert_allclose(actions, space.low + (unit + 1) * 0.5 * (space.high - space.low))
        assert (actions >= space.low - 1e-6).all() and (actions <= space.high + 1e-6).all()
        np.testing.assert_array_equal(
            np.concatenate([e["observations"][:-1] for e in episodes]),
            buffer["observations"][:steps],
        )
        np.testing.assert_array_equal(
            np.concatenate([e["terminations"] for e in episodes]), buffer["terminals"][:steps]
        )
        rewards = np.concatenate([e["rewards"] for e in episodes])
        np.testing.assert_allclose(rewards, buffer["rewards"][:steps].reshape(-1), rtol=1e-6)


def test_medium_replay_stops_at_the_medium_checkpoint(behavior_dir: Path) -> None:
    plan = plan_dataset(ENV_ID, "medium-replay", collect_config(), behavior_dir, seed=0)
    medium = plan_dataset(ENV_ID, "medium", collect_config(), behavior_dir, seed=0)
    checkpoint = medium.provenance["parts"][0]["policy_checkpoint"]
    assert checkpoint.endswith(f"step_{plan.replay_steps}.pt")


def test_medium_expert_holds_exactly_the_medium_then_expert_episodes(
    built: dict[str, Path],
) -> None:
    both = episodes_of(built["medium"]) + episodes_of(built["expert"])
    assert_same_episodes(episodes_of(built["medium-expert"]), both)


def test_reference_scores_and_normalised_score(
    built: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = built["medium"].parents[1]
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    for kind in built:
        metadata = read_metadata(root / f"hopper/{kind}-v0")
        assert metadata["ref_score_source"] == "d4rl"
        dataset = minari.load_dataset(f"hopper/{kind}-v0")
        score = minari.get_normalized_score(dataset, np.array([metadata["ref_max_score"]]))
        np.testing.assert_allclose(score, [1.0])


def test_same_seed_and_any_worker_count_give_the_same_dataset(
    tmp_path: Path, built: dict[str, Path], behavior_dir: Path
) -> None:
    two_workers = build(tmp_path / "w2", behavior_dir, "medium", workers=2)
    assert_same_episodes(episodes_of(two_workers), episodes_of(built["medium"]))
    again = build(tmp_path / "again", behavior_dir, "medium", workers=1)
    assert_same_episodes(episodes_of(again), episodes_of(built["medium"]))


def test_ray_backend_on_a_cluster_gives_the_same_dataset(
    tmp_path: Path, built: dict[str, Path], behavior_dir: Path
) -> None:
    """collect.ray_address joins a running cluster (here a head and a joined worker node on
    loopback, as on two machines) and the shards it runs there make the same dataset."""
    import ray  # a dev dependency: CI must run this, not skip it

    with local_ray_cluster() as address:
        ray.init(address=address, log_to_driver=False)
        try:
            deadline = time.monotonic() + 120
            while sum(node["Alive"] for node in ray.nodes()) < 2:
                assert time.monotonic() < deadline, "the worker node did not join"
                time.sleep(0.5)
            assert ray.cluster_resources().get("CPU") == 2.0
        finally:
            ray.shutdown()
        # Shards of 250 steps: three, two at a time, one CPU per node.
        path = build(tmp_path, behavior_dir, "medium", backend="ray", ray_address=address)
    assert_same_episodes(episodes_of(path), episodes_of(built["medium"]))
