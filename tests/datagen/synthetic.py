"""Hand-made Minari datasets with chosen lengths and terminal/truncation patterns."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datagen.collection.minari_writer import DatasetInfo, write_dataset
from datagen.collection.reference import d4rl_reference
from datagen.collection.rollouts import Episode

ENV_ID = "Hopper-v5"
OBS_DIM, ACT_DIM = 11, 3

# (steps, ends with a terminal): the last step is truncated otherwise. Short, single-step, both
# kinds of end, and episodes longer than the small chunk sizes the tests use.
PATTERN = [(1, True), (1, False), (5, True), (7, False), (300, True), (1200, False), (40, True)]


def synthetic_episode(steps: int, terminal: bool, rng: np.random.Generator, seed: int) -> Episode:
    observations = rng.normal(3.0, 2.0, size=(steps + 1, OBS_DIM))
    return Episode(
        seed=seed,
        observations=list(observations),
        actions=list(rng.uniform(-1, 1, size=(steps, ACT_DIM)).astype(np.float32)),
        rewards=list(rng.normal(1.0, 0.5, size=steps)),
        terminations=[False] * (steps - 1) + [terminal],
        truncations=[False] * (steps - 1) + [not terminal],
    )


def write_synthetic(
    root: Path,
    pattern: list[tuple[int, bool]] = PATTERN,
    kind: str = "synthetic",
    seed: int = 0,
) -> Path:
    rng = np.random.default_rng(seed)
    info = DatasetInfo(
        dataset_id=f"hopper/{kind}-v0",
        env_id=ENV_ID,
        algorithm_name="synthetic",
        description="hand-made episodes for tests",
        code_permalink="tests",
    )
    episodes = (synthetic_episode(s, t, rng, i) for i, (s, t) in enumerate(pattern))
    write_dataset(root, info, episodes, d4rl_reference(ENV_ID))
    return root / info.dataset_id
