"""Reference scores for normalisation: D4RL's published values, or those the reference stage
measured (`measured_reference.py`) and wrote to its file, which every dataset of an environment
records in its metadata."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.errors import PipelineError
from datagen.collection.config import RecipeError, env_family

# D4RL's REF_MIN_SCORE / REF_MAX_SCORE (random and expert returns of the v2 MuJoCo tasks), keyed by
# the environment family so that v4/v5 envs report scores on the literature's scale.
D4RL_REFERENCE_SCORES: dict[str, tuple[float, float]] = {
    "Hopper": (-20.272305, 3234.3),
    "HalfCheetah": (-280.178953, 12135.0),
    "Walker2d": (1.629008, 4592.3),
    "Ant": (-325.6, 3879.7),
}


@dataclass(frozen=True)
class ReferenceScores:
    min_score: float
    max_score: float
    source: str  # "d4rl" or "measured"


class ReferenceScoresError(PipelineError, ValueError):
    """No reference scores can be had for an environment (the message says which source to use)."""


def has_d4rl_reference(env_id: str) -> bool:
    """Whether D4RL published reference scores for this environment's family."""
    return env_family(env_id) in D4RL_REFERENCE_SCORES


def d4rl_reference(env_id: str) -> ReferenceScores:
    family = env_family(env_id)
    if family not in D4RL_REFERENCE_SCORES:
        raise ReferenceScoresError(
            f"D4RL published no reference scores for {env_id!r} (known: "
            f"{', '.join(sorted(D4RL_REFERENCE_SCORES))}); use ref_scores: measured"
        )
    low, high = D4RL_REFERENCE_SCORES[family]
    return ReferenceScores(low, high, "d4rl")


def read_reference(path: Path) -> ReferenceScores:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RecipeError(f"{path}: not found (run the reference stage first)") from None
    return ReferenceScores(data["ref_min_score"], data["ref_max_score"], data["ref_score_source"])
