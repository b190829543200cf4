"""Resuming a killed run: the fingerprint of what defines a run, and the one way a saved state is
taken up again. A state is resumed only when it is readable, of the expected kind and of this very
run (its fingerprint); anything else is ignored with the reason logged, and the run starts afresh.
Behaviour training (datagen/behavior) and offline training (offline_rl/trainer.py) both resume so."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


def fingerprint(payload: dict[str, Any]) -> str:
    """Stable hash of everything that defines a run, so a checkpoint of another run is not resumed."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def switches_off(config: object, names: Iterable[str]) -> set[str]:
    """Those of the boolean switches `names` that are off in `config`: left out of what is
    fingerprinted, they keep a run's fingerprint what it was before they existed, so that a state
    saved then still resumes."""
    return {name for name in names if not getattr(config, name)}


def load_resume_state(
    path: Path | None, run_fingerprint: str, expect: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The state saved at `path` if it is of the kind `expect` names (keys and their required
    values, e.g. {"algo": "td3_bc"}) and belongs to this exact run, else None (start afresh)."""
    if path is None or not path.exists():
        return None
    try:
        state = load_checkpoint(path, expect=dict(expect))
    except CheckpointError as error:
        log.warning("ignoring resume state: %s", error)
        return None
    if state.get("fingerprint") != run_fingerprint:
        log.info("%s belongs to another configuration; training from scratch", path)
        return None
    return state


def save_resume_state(path: Path, run_fingerprint: str, state: dict[str, Any]) -> None:
    """Write `state` with the run's fingerprint, atomically, for `load_resume_state`."""
    save_checkpoint(path, state | {"fingerprint": run_fingerprint})
