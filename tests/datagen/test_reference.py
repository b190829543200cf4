"""Reference scores: D4RL's published values or measured with fixed seeds, and clear errors."""

from __future__ import annotations

import gymnasium as gym
import pytest

from datagen.policies import RandomPolicy
from datagen.reference import REFERENCE_SEED_OFFSET, d4rl_reference, measure_reference


def test_measured_reference_is_repeatable_and_records_its_seeds() -> None:
    space = gym.make("Hopper-v5").action_space
    assert isinstance(space, gym.spaces.Box)

    def measure() -> tuple[float, float, dict[str, object]]:
        ref, details = measure_reference(
            "Hopper-v5", RandomPolicy(space, 1), RandomPolicy(space, 2), episodes=3, seed=4
        )
        assert ref.source == "measured"
        return ref.min_score, ref.max_score, details

    first, second = measure(), measure()
    assert first == second
    seeds = first[2]["episode_seeds"]
    assert seeds == [4 + REFERENCE_SEED_OFFSET, 4 + REFERENCE_SEED_OFFSET + 2]


def test_d4rl_reference_covers_the_literature_envs_and_names_the_others() -> None:
    for env_id in ("Hopper-v5", "HalfCheetah-v5", "Walker2d-v5"):
        assert d4rl_reference(env_id).source == "d4rl"
    with pytest.raises(ValueError, match="use ref_scores: measured"):
        d4rl_reference("Swimmer-v5")
