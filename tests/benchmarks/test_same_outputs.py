from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import torch

from benchmarks.same_outputs import compare


def write_outputs(root: Path, weight: float, update_s: float, obs: np.ndarray) -> None:
    (root / "models").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "metrics").mkdir()
    torch.save({"actor": {"w": torch.full((2, 2), weight)}}, root / "models/agent.pt")
    with h5py.File(root / "data/t.h5", "w") as f:
        f["observations"] = obs
        f.attrs["version"] = 1
    (root / "metrics/train.json").write_text(
        json.dumps({"loss": 0.5, "perf": {"update_s": update_s}})
    )


def test_same_values_pass_and_timings_do_not_count(tmp_path: Path) -> None:
    obs = np.arange(6, dtype=np.float32).reshape(3, 2)
    write_outputs(tmp_path / "a", 1.0, 0.1, obs)
    write_outputs(tmp_path / "b", 1.0, 0.2, obs)
    result = compare(tmp_path / "a", tmp_path / "b")
    assert result["files"] == 3 and result["differ"] == []
    assert result["volatile_differ"] == ["metrics/train.json:perf/update_s"]


def test_a_changed_weight_or_array_is_named(tmp_path: Path) -> None:
    obs = np.arange(6, dtype=np.float32).reshape(3, 2)
    write_outputs(tmp_path / "a", 1.0, 0.1, obs)
    write_outputs(tmp_path / "b", 1.0 + 1e-7, 0.1, obs.astype(np.float64))
    (tmp_path / "b/models/extra.pt").write_bytes(b"")
    result = compare(tmp_path / "a", tmp_path / "b")
    assert result["differ"] == ["data/t.h5:observations", "models/agent.pt:actor/w"]
    assert result["only_after"] == ["models/extra.pt"]
