from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from benchmarks import ab_speed
from tests.offline_rl.algos.test_contract import ROW_BOX_NAMES


@pytest.mark.parametrize("algo", ROW_BOX_NAMES)
def test_worker_times_every_algorithm(algo: str) -> None:
    assert ab_speed.worker(algo, "fp32", steps=2, warmup=1, threads=1) > 0


def test_baseline_must_be_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["ab_speed", "--baseline", str(tmp_path)])
    with pytest.raises(SystemExit):
        ab_speed.main()


def test_a_side_that_fails_names_its_checkout(tmp_path: Path) -> None:
    # Looks like a checkout, but offline_rl would come from elsewhere on the path.
    (tmp_path / "offline_rl").mkdir()
    args = argparse.Namespace(steps=1, warmup=0, threads=1)
    with pytest.raises(RuntimeError, match=str(tmp_path)):
        ab_speed.run_side(tmp_path, "bc", "fp32", args)
