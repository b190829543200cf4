"""Reference scores: D4RL's published values or measured with fixed seeds, and clear errors."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest
import torch

from datagen.behavior.policies import RandomPolicy, SACPolicy
from datagen.collection.measured_reference import REFERENCE_SEED_OFFSET, measure_reference
from datagen.collection.reference import d4rl_reference

EXPERT = Path(__file__).resolve().parents[1] / "fixtures/hopper_sac_behavior.pt"


def test_measured_reference_is_repeatable_and_records_its_seeds() -> None:
    space = gym.make("Hopper-v5").action_space
    assert isinstance(space, gym.spaces.Box)

    def measure(rng_seed: int) -> tuple[float, float, dict[str, object]]:
        torch.manual_seed(rng_seed)  # whatever the global RNG state before, the same scores
        ref, details = measure_reference(
            "Hopper-v5", RandomPolicy(space, 1), SACPolicy(EXPERT), episodes=3, seed=4
        )  # a sampling expert, as collect.deterministic_policy: false makes it
        assert ref.source == "measured" and ref.max_score > ref.min_score
        return ref.min_score, ref.max_score, details

    first, second = measure(1), measure(2)
    assert first == second
    seeds = first[2]["episode_seeds"]
    assert seeds == [4 + REFERENCE_SEED_OFFSET, 4 + REFERENCE_SEED_OFFSET + 2]


def test_an_expert_no_better_than_random_is_an_error() -> None:
    space = gym.make("Hopper-v5").action_space
    assert isinstance(space, gym.spaces.Box)
    with pytest.raises(ValueError, match="does not exceed the random policy's"):
        measure_reference(
            "Hopper-v5", RandomPolicy(space, 1), RandomPolicy(space, 1), episodes=2, seed=0
        )


def test_d4rl_reference_covers_the_literature_envs_and_names_the_others() -> None:
    for env_id in ("Hopper-v5", "HalfCheetah-v5", "Walker2d-v5"):
        assert d4rl_reference(env_id).source == "d4rl"
    with pytest.raises(ValueError, match="use ref_scores: measured"):
        d4rl_reference("Swimmer-v5")
