"""Image observations in transitions/spaces.py: a uint8 Box (H, W, C), or the one declared image
key of a Dict, becomes a uint8 layout of H * W * C bytes that keeps its shape; what cannot be
held fails in one line naming the space."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from transitions.spaces import ObservationLayout, SpaceError, observation_layout

IMAGE = gym.spaces.Box(0, 255, (7, 7, 3), np.uint8)
MINIGRID = gym.spaces.Dict(
    {"direction": gym.spaces.Discrete(4), "image": IMAGE, "mission": gym.spaces.Text(20)}
)


def test_a_uint8_box_image_is_a_uint8_layout_of_its_bytes() -> None:
    layout = observation_layout(IMAGE)
    assert layout == ObservationLayout(obs_dim=147, image=(7, 7, 3))
    assert layout.dtype is np.uint8
    frames = np.arange(2 * 147, dtype=np.int64).reshape(2, 7, 7, 3) % 256
    flat = layout.flatten(frames.astype(np.uint8))
    assert flat.dtype == np.uint8 and flat.shape == (2, 147)
    stored = layout.stored(flat)
    assert isinstance(stored, np.ndarray) and np.array_equal(stored, frames)  # byte for byte


def test_the_declared_image_key_of_a_dict_is_taken_without_its_mission() -> None:
    layout = observation_layout(MINIGRID, "MiniGrid", keys=["image"])
    assert layout.keys == (("image", 147),) and layout.image == (7, 7, 3)
    obs = {"image": np.full((7, 7, 3), 5, np.uint8), "direction": 1, "mission": "go"}
    assert layout.flatten(obs).dtype == np.uint8
    assert set(layout.stored(layout.flatten(obs)[None])) == {"image"}


def test_layouts_round_trip_through_the_header_and_vectors_keep_their_json() -> None:
    image = observation_layout(MINIGRID, keys=["image"])
    assert ObservationLayout.from_json(image.to_json()) == image
    assert ObservationLayout.from_json(observation_layout(IMAGE).to_json()) == observation_layout(
        IMAGE
    )
    # A vector Box still writes "[]" and a Dict of vectors its [[key, width]] list, as before
    # images: Hopper's and the Dict envs' files are unchanged.
    assert ObservationLayout(obs_dim=11).to_json() == "[]"
    assert ObservationLayout(3, (("a", 2), ("b", 1))).to_json() == '[["a", 2], ["b", 1]]'


@pytest.mark.parametrize(
    ("space", "keys", "message"),
    [
        (MINIGRID, None, r"image key 'image' must be the only observation key"),
        (MINIGRID, ["image", "direction"], r"must be the only observation key"),
        (MINIGRID, ["mission"], r"\['mission'\]: Text is not supported here"),
        (gym.spaces.Box(0, 1, (7, 7, 3), np.float32), None, r"Box\(float32, \(7, 7, 3\)\)"),
        (gym.spaces.Box(0, 255, (7, 7), np.uint8), None, r"Box\(uint8, \(7, 7\)\)"),
    ],
)
def test_what_cannot_be_held_is_named(
    space: gym.Space[Any], keys: list[str] | None, message: str
) -> None:
    with pytest.raises(SpaceError, match=message):
        observation_layout(space, "env observation space", keys)


def test_observation_statistics_of_wide_rows_merge_in_bounded_slices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The writer's statistics take wide image rows a slice at a time (bounded float64 copies)
    and still give the exact mean and std; narrow rows are one slice, as before images."""
    from transitions import writer

    rows = np.random.default_rng(0).integers(0, 256, (500, 147)).astype(np.uint8)
    monkeypatch.setattr(writer, "MAX_STATS_VALUES", 147 * 7)  # slices of 7 rows
    stats = writer.RunningStats()
    stats.update(rows[:250])
    stats.update(rows[250:])
    assert stats.mean is not None
    np.testing.assert_allclose(stats.mean, rows.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, rows.std(0), rtol=1e-12)
