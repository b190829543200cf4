"""The results report from a 2 algorithms x 2 seeds grid: means, spreads, files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from analysis.report import aggregate, render, write_report
from analysis.snapshot import RunResult, Snapshot, read_snapshot, snapshot_text, write_if_changed

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


def test_snapshot_round_trips_and_is_rewritten_only_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "reports/experiments.json"
    snapshot = Snapshot(tuple(grid()), ("dvc", "wandb"), "^a")
    assert write_if_changed(path, snapshot_text(snapshot))
    assert read_snapshot(path) == snapshot
    text, mtime = path.read_text(), path.stat().st_mtime_ns
    assert text == snapshot_text(Snapshot(tuple(grid()), ("dvc", "wandb"), "^a"))  # deterministic
    assert text.count("\n  {") == len(grid())  # one run per line: diffs name the runs
    assert not write_if_changed(path, snapshot_text(snapshot))
    assert path.stat().st_mtime_ns == mtime
    assert write_if_changed(path, snapshot_text(Snapshot(tuple(grid()[:2]))))
    assert len(read_snapshot(path).runs) == 2
    assert [p.name for p in path.parent.iterdir()] == ["experiments.json"]  # no temporaries left


def test_missing_or_empty_snapshot_renders_no_experiments(tmp_path: Path) -> None:
    assert read_snapshot(tmp_path / "missing.json") == Snapshot()
    (tmp_path / "empty.json").write_text("")
    assert read_snapshot(tmp_path / "empty.json") == Snapshot()
    assert render(Snapshot(), tmp_path / "out") == []
    assert "No experiment with a score yet" in (tmp_path / "out/results.md").read_text()
    assert (tmp_path / "out/results.csv").read_text().count("\n") == 1  # the header only
    assert (tmp_path / "out/curves.png").read_bytes()[:4] == b"\x89PNG"


def test_a_file_of_another_schema_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "experiments.json"
    path.write_text('{"schema": 99, "runs": []}')
    with pytest.raises(ValueError, match="not a results snapshot"):
        read_snapshot(path)


def test_markdown_names_its_sources_and_runs(tmp_path: Path) -> None:
    render(Snapshot(tuple(grid()), ("dvc", "wandb"), "^a|^b"), tmp_path)
    markdown = (tmp_path / "results.md").read_text()
    assert "DVC experiments and commits and finished wandb runs, names matching `^a|^b`" in markdown
    assert "| b0 | dvc | bc | hopper/medium-v0 | 0 | 40.0 | – |" in markdown
    assert "1 more run(s) repeat" in markdown  # b1-old
