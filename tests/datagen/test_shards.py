"""Shards: a plan that ignores the worker count, saved shards reused after a kill, config errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from datagen.collection.backends import BackendConfig, collect_shards
from datagen.collection.config import CollectConfig, DatasetRecipe
from datagen.collection.shards import (
    PolicySpec,
    load_shard,
    plan_shards,
    save_shard,
    shard_path,
    unpack,
)

ENV_ID = "Hopper-v5"


def test_plan_cuts_the_budget_into_fixed_shards_with_disjoint_seeds() -> None:
    jobs = plan_shards(ENV_ID, PolicySpec("random"), 1050, 7, shard_steps=500, num_envs=4)
    assert [j.steps for j in jobs] == [500, 500, 50]
    assert [j.seed_base for j in jobs] == [7, 7 + 504, 7 + 1008]
    assert len({j.fingerprint() for j in jobs}) == 3


def test_saved_shards_are_reused_and_stale_ones_collected_again(tmp_path: Path) -> None:
    jobs = plan_shards(ENV_ID, PolicySpec("random"), 300, 0, shard_steps=100, num_envs=2)
    backend = BackendConfig("process", workers=1)
    first = list(collect_shards(jobs, tmp_path, backend))
    # A run killed after shard 0: mark its saved copy so reuse is visible, break shard 1's
    # fingerprint (other params) and delete shard 2.
    marked = first[0] | {"rewards": first[0]["rewards"] + 1000.0}
    save_shard(shard_path(tmp_path, jobs[0]), jobs[0], marked)
    other = plan_shards(ENV_ID, PolicySpec("random"), 300, 99, shard_steps=100, num_envs=2)[1]
    save_shard(shard_path(tmp_path, jobs[1]), other, first[1])
    shard_path(tmp_path, jobs[2]).unlink()
    assert load_shard(shard_path(tmp_path, jobs[1]), jobs[1]) is None
    resumed = list(collect_shards(jobs, tmp_path, backend))
    np.testing.assert_array_equal(resumed[0]["rewards"], marked["rewards"])  # reused, not rerun
    for k in (1, 2):
        for key in first[k]:
            np.testing.assert_array_equal(resumed[k][key], first[k][key])
    assert sum(len(e) for a in resumed for e in unpack(a)) == 300


def test_replay_kinds_take_no_steps_and_sampled_kinds_need_them() -> None:
    with pytest.raises(ValidationError, match="steps must be null for medium-replay"):
        DatasetRecipe(policy="medium-replay", steps=10)
    with pytest.raises(ValidationError, match="steps is required"):
        DatasetRecipe(policy="medium")
    with pytest.raises(ValidationError, match=r"did you mean .medium."):
        DatasetRecipe(policy="meduim", steps=10)


def test_kinds_and_env_namespaces_are_checked() -> None:
    recipes = {"random": DatasetRecipe(policy="random", steps=10)}
    with pytest.raises(ValidationError, match=r"kinds \['medium'\] are not defined"):
        CollectConfig(datasets=recipes, kinds=["medium"])
    with pytest.raises(ValidationError, match="must be listed under 'walker2d'"):
        CollectConfig(datasets=recipes, kinds=["random"], envs={"walker": "Walker2d-v5"})
    config = CollectConfig(datasets=recipes, kinds=["random"], ref_scores={"hopper": "measured"})
    assert config.ref_source("hopper") == "measured"
