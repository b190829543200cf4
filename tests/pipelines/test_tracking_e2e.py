"""Tracking end to end on tiny params in a temporary copy of the repository: metrics and plots
files parse and `dvc plots show` renders them, a queued two-seed grid runs and `dvc exp show`
lists both, the queued experiments' wandb runs survive their temporary workspaces, and the
report gathers the grid (and the queued experiments never run the report stage)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.pipelines.stage_runner import copy_repo, sh
from tests.wandb_files import local_runs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The repository after a queued grid, and what running the queue printed."""
    repo = copy_repo(tmp_path_factory.mktemp("tracking"))
    sh(["dvc", "repro"], repo)
    sh(["git", "add", "-A"], repo)  # the baseline the queued experiments start from
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "repro"], repo)
    # An algorithm grid reruns only train and evaluate (a seed grid would rerun everything).
    for name, algo in (("algo-bc", "bc"), ("algo-td3bc", "td3_bc")):
        sh(
            [
                "dvc",
                "exp",
                "run",
                "--queue",
                "-S",
                f"train.algo={algo}",
                "-S",
                "lr=3e-4",
                "-n",
                name,
            ],
            repo,
        )
    out = sh(["dvc", "exp", "run", "--run-all"], repo)
    return repo, out


@pytest.fixture(scope="module")
def grid(grid_run: tuple[Path, str]) -> Path:
    return grid_run[0]


def test_queued_experiments_leave_the_report_stage_alone(grid_run: tuple[Path, str]) -> None:
    out = grid_run[1]
    assert out.count("Running stage 'train'") == 2, out
    assert "Running stage 'report'" not in out
    assert out.count("Stage 'report' didn't change, skipping") == 2


def test_metrics_and_plots_files_parse_and_render(grid: Path) -> None:
    for stage in ("behavior/hopper", "train", "evaluate"):
        json.loads((grid / f"metrics/{stage}.json").read_text())
    train = json.loads((grid / "metrics/train.json").read_text())
    assert train["eval/best_normalized_score"] >= train["eval/normalized_score_mean"]
    profile = json.loads((grid / "metrics/profile.json").read_text())
    assert profile["update_calls"] == 300 and profile["traced"] is False
    with (grid / "plots/train/losses.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [100, 200, 300]
    assert {"critic_loss", "q_mean", "grad_norm/actor", "perf/grad_steps_per_s"} <= set(rows[0])
    out = sh(["dvc", "plots", "show", "-o", "html"], grid)
    html = (grid / "html/index.html").read_text()
    assert "index.html" in out
    for title in ("Offline training - normalised score", "Offline training - critic loss"):
        assert title in html
    for curve in ("episodes", "losses", "eval"):  # behaviour curves: one plot per environment
        assert f"plots/behavior/{curve}/hopper.csv" in html
    shown = json.loads(sh(["dvc", "plots", "show", "--json"], grid))
    assert not shown.get("errors"), shown["errors"]


def test_queued_grid_is_listed_and_keeps_its_wandb_runs(grid: Path) -> None:
    table = json.loads(sh(["dvc", "exp", "show", "--json"], grid))
    names = {
        rev["name"] for base in table for exp in base["experiments"] or [] for rev in exp["revs"]
    }
    assert {"algo-bc", "algo-td3bc"} <= names
    runs = local_runs(grid / "wandb")
    groups = {r.group for r in runs if r.job_type == "train"}
    assert {"workspace", "algo-bc", "algo-td3bc"} <= groups  # under DVC_ROOT, not the temp copy
    train = next(r for r in runs if r.group == "algo-bc" and r.job_type == "train")
    assert train.name == "algo-bc-train-seed0" and "algo:bc" in train.tags  # a run per seed
    assert len(train.config["transitions_md5"]) == 32


def test_report_gathers_the_grid(grid: Path) -> None:
    out = sh(["python", "-m", "pipelines.report"], grid)
    assert "td3_bc" in out and "Running stage 'report'" in out
    # The baseline commit (td3_bc, lr 1e-3) and both experiments; td3_bc seed 0 twice, the
    # newer (the experiment) wins.
    snapshot = json.loads((grid / "reports/experiments.json").read_text())
    names = [r["name"] for r in snapshot["runs"]]  # a row per experiment and training seed
    assert len(names) == 3 and {"algo-bc/seed0", "algo-td3bc/seed0"} <= set(names)
    assert all(r["curve"] for r in snapshot["runs"])
    with (grid / "reports/results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["algo"], r["dataset"], r["seeds"]) for r in rows] == [
        ("bc", "hopper/medium-v0", "0"),
        ("td3_bc", "hopper/medium-v0", "0"),
    ]
    td3bc = next(r for r in snapshot["runs"] if r["name"] == "algo-td3bc/seed0")
    assert float(rows[1]["final_mean"]) == pytest.approx(td3bc["final_score"], abs=1e-4)
    assert (grid / "reports/curves.png").stat().st_size > 1000
    assert "up to date" in sh(["dvc", "status"], grid)
    sh(["git", "add", "-A"], grid)  # commit the report: gathering again finds nothing new
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "report"], grid)
    again = sh(["python", "-m", "pipelines.report"], grid)
    assert "(unchanged)" in again and "Stage 'report' didn't change, skipping" in again
