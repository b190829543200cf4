"""Checkpoint files: the same payload gives the same bytes, so recorded sha256s identify it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from core.checkpoint import load_checkpoint, save_checkpoint


def test_same_payload_same_bytes_wherever_it_is_saved(tmp_path: Path) -> None:
    weights = torch.arange(6.0).reshape(2, 3)
    payload = {"kind": "test", "weights": {"w": weights}, "step": 3}
    paths = [tmp_path / "a" / "step_3.pt", tmp_path / "b" / "other_name.pt"]
    for path in paths:
        save_checkpoint(path, payload)
    digests = {hashlib.sha256(path.read_bytes()).hexdigest() for path in paths}
    assert len(digests) == 1
    loaded = load_checkpoint(paths[1])
    assert loaded["step"] == 3 and torch.equal(loaded["weights"]["w"], weights)
