"""Checkpoints: model, optimisers, RNG states and step in one file, written atomically."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.atomic import atomic_path
from core.errors import PipelineError


class CheckpointError(PipelineError, ValueError):
    """A checkpoint is unreadable or belongs to another algorithm or configuration."""


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    # Through a file object: torch names the zip's root folder after a file name it is given (here
    # the random temporary one), so the same payload would give different bytes and sha256.
    with atomic_path(path, suffix=".pt") as tmp, tmp.open("wb") as f:
        torch.save(payload, f)


def load_checkpoint(path: str | Path, expect: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load a checkpoint; `expect` maps keys to required values (e.g. the algorithm's name)."""
    path = Path(path)
    try:
        payload: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except Exception as error:
        raise CheckpointError(
            f"{path}: unreadable checkpoint ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not a checkpoint of this project")
    for key, value in (expect or {}).items():
        if payload.get(key) != value:
            raise CheckpointError(
                f"{path}: checkpoint has {key}={payload.get(key)!r}, expected {value!r}"
            )
    return payload
