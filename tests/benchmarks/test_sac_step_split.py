from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import sac_step_split


def test_split_writes_each_part_and_a_bound_above_the_rate_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "split.json"
    monkeypatch.setattr(sys, "argv", ["sac_step_split", "--steps", "3", "--out", str(out)])
    sac_step_split.main()
    result = json.loads(out.read_text())
    assert result["plain_update_ms"] > 0 and result["rest_ms"] > 0
    for precision in ("fp32", "bf16"):
        row = result["ours"][precision]
        # the products are part of the update, so leaving out the rest can only speed it up
        assert 0 < row["matmul_ms"] < row["update_ms"]
        assert row["x_plain_bound"] > row["x_plain_now"] > 0
