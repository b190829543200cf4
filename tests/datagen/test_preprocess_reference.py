"""Preprocessing of hand-made episodes (single-step, terminal, truncated, longer than a chunk)
against a straightforward per-episode computation."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from core.config import ConfigError, parse_config
from datagen.preprocessing.config import PreprocessConfig
from datagen.preprocessing.minari_reader import PreprocessError
from datagen.preprocessing.preprocess import preprocess
from tests.datagen.synthetic import PATTERN, write_synthetic
from transitions.loader import load_transitions

SOURCE = "hopper/synthetic-v0"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("datasets"))


def reference(dataset: Path, discount: float = 1.0) -> dict[str, np.ndarray]:
    """Episode by episode, step by step: the obvious construction."""
    rows: dict[str, list[object]] = {
        k: []
        for k in (
            "observations",
            "actions",
            "rewards",
            "next_observations",
            "terminals",
            "timeouts",
            "episode_ids",
            "returns_to_go",
        )
    }
    with h5py.File(dataset / "data" / "main_data.hdf5", "r") as f:
        for index in range(len(f)):
            group = f[f"episode_{index}"]
            obs, rewards = group["observations"][()], group["rewards"][()]
            term, trunc = group["terminations"][()], group["truncations"][()]
            rtg, running = [0.0] * len(rewards), 0.0
            for t in reversed(range(len(rewards))):
                running = rewards[t] + discount * running
                rtg[t] = running
            for t in range(len(rewards)):
                rows["observations"].append(obs[t])
                rows["next_observations"].append(obs[t + 1])
                rows["actions"].append(group["actions"][t])
                rows["rewards"].append(rewards[t])
                rows["terminals"].append(term[t])
                rows["timeouts"].append(trunc[t] and not term[t])
                rows["episode_ids"].append(index)
                rows["returns_to_go"].append(rtg[t])
    return {k: np.asarray(v) for k, v in rows.items()}


def read_all(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {key: f[key][()] for key in f}


@pytest.mark.parametrize("chunk_rows", [1, 64, 1000, 100_000])
def test_arrays_match_reference_whatever_the_chunk(
    synthetic: Path, tmp_path: Path, chunk_rows: int
) -> None:
    out = tmp_path / "t.h5"
    preprocess([(SOURCE, synthetic)], out, PreprocessConfig(chunk_rows=chunk_rows))
    expected, got = reference(synthetic), read_all(out)
    assert len(got["rewards"]) == sum(steps for steps, _ in PATTERN)
    for key in ("observations", "next_observations", "actions", "rewards", "episode_ids"):
        np.testing.assert_array_equal(got[key], expected[key].astype(got[key].dtype), key)
    np.testing.assert_array_equal(got["terminals"], expected["terminals"])
    np.testing.assert_array_equal(got["timeouts"], expected["timeouts"])
    np.testing.assert_allclose(got["returns_to_go"], expected["returns_to_go"], rtol=1e-6)
    assert not got["validation"].any()
    # every episode ends in exactly one of terminal / timeout, and no earlier step does
    ends = np.flatnonzero(np.diff(got["episode_ids"], append=len(PATTERN)))
    flags = got["terminals"] | got["timeouts"]
    np.testing.assert_array_equal(np.flatnonzero(flags), ends)
    np.testing.assert_array_equal(got["terminals"][ends], [t for _, t in PATTERN])
    with h5py.File(out, "r") as f:
        observations = expected["observations"].astype(np.float32).astype(np.float64)
        np.testing.assert_allclose(f.attrs["obs_mean"], observations.mean(0), rtol=1e-6)
        np.testing.assert_allclose(f.attrs["obs_std"], observations.std(0), rtol=1e-6)
        returns = np.bincount(expected["episode_ids"], weights=expected["rewards"])
        assert f.attrs["return_min"] == pytest.approx(returns.min(), rel=1e-9)
        assert f.attrs["return_max"] == pytest.approx(returns.max(), rel=1e-9)
        assert f.attrs["num_episodes"] == len(PATTERN)


def test_chunk_size_changes_nothing_in_the_file(synthetic: Path, tmp_path: Path) -> None:
    files = []
    for chunk_rows in (7, 100_000):
        out = tmp_path / f"{chunk_rows}.h5"
        preprocess([(SOURCE, synthetic)], out, PreprocessConfig(chunk_rows=chunk_rows))
        files.append(read_all(out))
    for key, value in files[0].items():
        np.testing.assert_array_equal(value, files[1][key], key)


def test_discounted_returns_to_go_stop_at_truncation(synthetic: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.h5"
    preprocess(
        [(SOURCE, synthetic)], out, PreprocessConfig(return_to_go_discount=0.9, chunk_rows=50)
    )
    expected = reference(synthetic, discount=0.9)
    got = read_all(out)
    np.testing.assert_allclose(got["returns_to_go"], expected["returns_to_go"], rtol=1e-5)
    # the last step of the 1200-step truncated episode: its own reward only, nothing bootstrapped
    last = sum(steps for steps, _ in PATTERN[:6]) - 1
    assert got["timeouts"][last]
    assert got["returns_to_go"][last] == pytest.approx(got["rewards"][last])


@pytest.mark.parametrize("compression", ["gzip", "lzf"])
def test_compression_keeps_the_values(synthetic: Path, tmp_path: Path, compression: str) -> None:
    plain, packed = tmp_path / "plain.h5", tmp_path / "packed.h5"
    preprocess([(SOURCE, synthetic)], plain, PreprocessConfig())
    preprocess([(SOURCE, synthetic)], packed, PreprocessConfig(compression=compression))  # type: ignore[arg-type]
    with h5py.File(packed, "r") as f:
        assert f["observations"].compression == compression
    for key, value in read_all(plain).items():
        np.testing.assert_array_equal(read_all(packed)[key], value, key)


def split_of(path: Path) -> tuple[set[int], set[int]]:
    got = read_all(path)
    held_out = set(got["episode_ids"][got["validation"]].tolist())
    return held_out, set(got["episode_ids"].tolist()) - held_out


def test_validation_split_is_by_episode_and_follows_the_seed(
    synthetic: Path, tmp_path: Path
) -> None:
    config = PreprocessConfig(validation_fraction=0.3, chunk_rows=100)
    splits = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2), ("d", 3)):
        preprocess([(SOURCE, synthetic)], tmp_path / f"{name}.h5", config, seed=seed)
        splits.append(split_of(tmp_path / f"{name}.h5"))
    held_out, train = splits[0]
    assert len(held_out) == round(0.3 * len(PATTERN)) and not held_out & train
    assert splits[1] == splits[0]  # same seed, same split
    assert any(s != splits[0] for s in splits[2:])
    got = read_all(tmp_path / "a.h5")
    # whole episodes: a step is held out exactly when its episode is
    np.testing.assert_array_equal(got["validation"], np.isin(got["episode_ids"], list(held_out)))
    # statistics and the return range come from training episodes only
    train_rows = ~got["validation"]
    returns = np.bincount(got["episode_ids"], weights=got["rewards"].astype(np.float64))
    with h5py.File(tmp_path / "a.h5", "r") as f:
        np.testing.assert_allclose(
            f.attrs["obs_mean"], got["observations"][train_rows].astype(np.float64).mean(0), 1e-6
        )
        assert f.attrs["return_max"] == pytest.approx(returns[sorted(train)].max(), rel=1e-6)
        assert f.attrs["num_validation_episodes"] == len(held_out)


def test_load_returns_the_requested_split(synthetic: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.h5"
    preprocess(
        [(SOURCE, synthetic)],
        out,
        PreprocessConfig(validation_fraction=0.3, normalize_observations=False),
        seed=4,
    )
    got = read_all(out)
    every = load_transitions(out)
    train = load_transitions(out, split="train")
    validation = load_transitions(out, split="validation")
    assert len(every) == len(got["rewards"]) == len(train) + len(validation)
    np.testing.assert_array_equal(
        train.observations.numpy(), got["observations"][~got["validation"]]
    )
    np.testing.assert_array_equal(
        validation.next_observations.numpy(), got["next_observations"][got["validation"]]
    )


def test_bad_split_fraction_and_names_are_clear(synthetic: Path, tmp_path: Path) -> None:
    with pytest.raises(PreprocessError, match=r"validation_fraction = 0\.01 holds out 0 of 7"):
        preprocess(
            [(SOURCE, synthetic)], tmp_path / "t.h5", PreprocessConfig(validation_fraction=0.01)
        )
    with pytest.raises(ConfigError, match=r"preprocess.datasets.*Medium"):
        parse_config(PreprocessConfig, {"datasets": ["Medium"]}, "preprocess")


@pytest.mark.parametrize("normalize", [True, False])
def test_transforms_applied_exactly_as_configured(
    synthetic: Path, tmp_path: Path, normalize: bool
) -> None:
    out = tmp_path / "t.h5"
    discount, scale, shift = 0.95, 0.5, -1.0
    config = PreprocessConfig(
        normalize_observations=normalize,
        reward_normalization="return_range",
        reward_scale=scale,
        reward_shift=shift,
        return_to_go_discount=discount,
    )
    preprocess([(SOURCE, synthetic)], out, config)
    expected = reference(synthetic, discount)
    data = load_transitions(out)
    returns = np.bincount(expected["episode_ids"], weights=expected["rewards"])
    a = scale * 1000.0 / (returns.max() - returns.min())
    np.testing.assert_allclose(
        data.rewards.numpy(), expected["rewards"] * a + shift, rtol=1e-5, atol=1e-6
    )
    transformed = dict(expected, rewards=expected["rewards"] * a + shift)
    assert data.returns_to_go is not None
    np.testing.assert_allclose(
        data.returns_to_go.numpy(),
        reference_rtg(transformed, discount),
        rtol=1e-4,
        atol=1e-3,
    )
    observations = expected["observations"].astype(np.float32)
    if normalize:
        mean, std = observations.mean(0), np.maximum(observations.std(0), 1e-3)
        observations = (observations - mean) / std
    np.testing.assert_allclose(data.observations.numpy(), observations, rtol=1e-5, atol=1e-5)
    # Hopper's actions are already in [-1, 1]
    np.testing.assert_allclose(data.actions.numpy(), expected["actions"], atol=1e-6)
    assert torch.equal(data.dones, torch.from_numpy(expected["terminals"].astype(np.float32)))


def reference_rtg(rows: dict[str, np.ndarray], discount: float) -> np.ndarray:
    out, running = np.zeros(len(rows["rewards"])), 0.0
    for t in reversed(range(len(out))):
        last = t == len(out) - 1 or rows["episode_ids"][t + 1] != rows["episode_ids"][t]
        running = rows["rewards"][t] + (0.0 if last else discount * running)
        out[t] = running
    return out


def test_peak_memory_is_set_by_the_chunk(tmp_path: Path) -> None:
    """20k steps in long episodes through a 500-row buffer: Python-side allocations stay near the
    chunk (~60 kB) and far below the output (~2.4 MB)."""
    dataset = write_synthetic(tmp_path / "d", [(1000, False)] * 20, kind="long")
    out = tmp_path / "t.h5"
    tracemalloc.start()
    try:
        preprocess([("hopper/long-v0", dataset)], out, PreprocessConfig(chunk_rows=500))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.stat().st_size > 2_000_000
    assert peak < 500_000, peak
