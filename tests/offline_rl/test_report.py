"""The results report from a 2 algorithms x 2 seeds grid: means, spreads, files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from offline_rl.report import RunResult, aggregate, write_report

DATASET = "hopper/medium-v0"


def grid() -> list[RunResult]:
    curve = lambda final: ((100, 0.0), (200, final / 2), (300, final))  # noqa: E731
    return [
        RunResult("a0", "td3_bc", DATASET, 0, 50.0, 60.0, curve(50.0)),
        RunResult("a1", "td3_bc", DATASET, 1, 70.0, 75.0, curve(70.0)),
        RunResult("b0", "bc", DATASET, 0, 40.0, None, curve(40.0)),
        RunResult("b1", "bc", DATASET, 1, 44.0, 46.0, curve(44.0)[:2]),  # a shorter curve
        RunResult("b1-old", "bc", DATASET, 1, 0.0, 0.0, ()),  # same seed again: first one wins
    ]


def test_table_holds_mean_and_spread_over_seeds(tmp_path: Path) -> None:
    cells = {c.algo: c for c in write_report(grid(), tmp_path)}
    td3, bc = cells["td3_bc"], cells["bc"]
    assert td3.seeds == (0, 1) and bc.seeds == (0, 1)
    assert (td3.final_mean, td3.final_std) == pytest.approx((60.0, 10.0))
    assert (td3.best_mean, td3.best_std) == pytest.approx((67.5, 7.5))
    assert (bc.final_mean, bc.final_std) == pytest.approx((42.0, 2.0))
    # A run without a best score counts its final score as its best.
    assert (bc.best_mean, bc.best_std) == pytest.approx((43.0, 3.0))

    with (tmp_path / "results.csv").open() as f:
        rows = {r["algo"]: r for r in csv.DictReader(f)}
    assert rows["td3_bc"]["final_mean"] == "60.0000" and rows["td3_bc"]["final_std"] == "10.0000"
    markdown = (tmp_path / "results.md").read_text()
    assert f"| {DATASET} | 42.0 ± 2.0 (n=2) | 60.0 ± 10.0 (n=2) |" in markdown
    assert "| **Average** | 42.0 | 60.0 |" in markdown
    png = (tmp_path / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_runs_without_a_score_are_left_out() -> None:
    runs = [*grid(), RunResult("x", "iql", DATASET, 0, None, None)]
    assert {c.algo for c in aggregate(runs)} == {"td3_bc", "bc"}
