"""The `report` stage with real git and DVC in a copy of the repository: a fresh clone renders "no
experiments yet", a 2 algorithms x 2 seeds grid of DVC experiments is gathered into the snapshot
and rendered (means, stds, PNG), `dvc status` is clean after, gathering again changes nothing
(also after committing the report), and a new experiment changes the snapshot and reruns the stage.

The experiments are saved with `dvc exp save` from metrics files written here (known scores, no
training), so this runs in seconds; tests/pipelines/test_e2e.py and test_tracking_e2e.py run the
stage after real training."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.pipelines.stage_runner import copy_repo, git_commit_all, sh

SNAPSHOT = "reports/experiments.json"
REPORT = ["python", "-m", "pipelines.report"]
OUTS = ("reports/results.md", "reports/results.csv", "reports/curves.png")


RESULTS = ("metrics/evaluate.json", "metrics/train.json", "plots/train/eval.csv")


def write_results(repo: Path, algo: str, seed: int, final: float, best: float) -> str:
    """What a run of train and evaluate leaves: params, metrics and the eval curve; returns the
    original params.yaml."""
    params = repo / "params.yaml"
    original = params.read_text()
    params.write_text(original.replace("\nseed: 0\n", f"\nseed: {seed}\n"))
    evaluate = {
        "algo": algo,
        "dataset": "hopper/medium-v0",
        "evaluate/normalized_score_mean": final,
    }
    train = {"algo": algo, "eval/best_normalized_score": best, "eval/normalized_score_mean": final}
    (repo / "metrics").mkdir(exist_ok=True)
    (repo / "metrics/evaluate.json").write_text(json.dumps(evaluate))
    (repo / "metrics/train.json").write_text(json.dumps(train))
    (repo / "plots/train").mkdir(parents=True, exist_ok=True)
    curve = f"step,eval/normalized_score_mean\n100,{final / 2}\n200,{best}\n300,{final}\n"
    (repo / "plots/train/eval.csv").write_text(curve)
    return original


def save_experiment(repo: Path, name: str, algo: str, seed: int, final: float, best: float) -> None:
    """An experiment as `dvc exp run` would commit it, then the workspace back as it was."""
    original = write_results(repo, algo, seed, final, best)
    sh(["dvc", "exp", "save", "report", "-n", name, "-I", "metrics", "-I", "plots"], repo)
    (repo / "params.yaml").write_text(original)
    for path in RESULTS:
        (repo / path).unlink()


def ran_report(out: str) -> bool:
    if "Running stage 'report'" in out:
        return True
    assert "Stage 'report' didn't change, skipping" in out, out
    return False


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_repo(tmp_path_factory.mktemp("report"))


def test_fresh_clone_renders_no_experiments(clone: Path) -> None:
    assert json.loads((clone / SNAPSHOT).read_text())["runs"] == []  # committed, empty
    assert ran_report(sh(["dvc", "repro", "report"], clone))
    assert "No experiment with a score yet" in (clone / "reports/results.md").read_text()
    assert "up to date" in sh(["dvc", "status", "report"], clone)
    git_commit_all(clone, "report of no experiments")


def test_grid_is_gathered_and_rendered(clone: Path) -> None:
    for algo, base in (("bc", 40.0), ("td3_bc", 60.0)):
        for seed in (0, 1):
            final = base + 10.0 * seed  # means base + 5, population std 5
            save_experiment(clone, f"{algo}-{seed}", algo, seed, final, final + 2 + 2 * seed)
    out = sh(REPORT, clone)
    assert "4 runs -> reports/experiments.json (updated)" in out
    assert ran_report(out)
    runs = json.loads((clone / SNAPSHOT).read_text())["runs"]
    assert sorted(r["name"] for r in runs) == ["bc-0", "bc-1", "td3_bc-0", "td3_bc-1"]
    assert {len(r["rev"]) for r in runs} == {40} and all(r["curve"] for r in runs)
    with (clone / "reports/results.csv").open() as f:
        rows = {r["algo"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"bc", "td3_bc"}
    bc, td3 = rows["bc"], rows["td3_bc"]
    assert (bc["seeds"], bc["final_mean"], bc["final_std"]) == ("0 1", "45.0000", "5.0000")
    assert (bc["best_mean"], bc["best_std"]) == ("48.0000", "6.0000")  # 42 and 54
    assert (td3["final_mean"], td3["final_std"]) == ("65.0000", "5.0000")
    markdown = (clone / "reports/results.md").read_text()
    assert "| hopper/medium-v0 | 45.0 ± 5.0 (n=2) | 65.0 ± 5.0 (n=2) |" in markdown
    png = (clone / "reports/curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "up to date" in sh(["dvc", "status", "report"], clone)


def test_gathering_again_changes_nothing(clone: Path) -> None:
    before = {name: (clone / name).stat().st_mtime_ns for name in (SNAPSHOT, *OUTS)}
    out = sh(REPORT, clone)
    assert "(unchanged)" in out and not ran_report(out)
    # Committing the report makes a new HEAD with the same results: still nothing to do.
    git_commit_all(clone, "report of the grid")
    out = sh(REPORT, clone)
    assert "(unchanged)" in out and not ran_report(out)
    # Nor does a commit holding an experiment's result (promoted by hand): one row, the
    # experiment's; nor the commit after it.
    write_results(clone, "td3_bc", 0, 60.0, 62.0)
    git_commit_all(clone, "td3_bc seed 0 results")
    for path in RESULTS:
        sh(["git", "rm", "-q", path], clone)
    git_commit_all(clone, "results out of the workspace again")
    out = sh(REPORT, clone)
    assert "4 runs -> reports/experiments.json (unchanged)" in out and not ran_report(out)
    assert {name: (clone / name).stat().st_mtime_ns for name in before} == before
    assert sh(["git", "status", "--porcelain"], clone).strip() == ""


def test_a_new_experiment_changes_the_snapshot_and_reruns_the_stage(clone: Path) -> None:
    save_experiment(clone, "bc-2", "bc", 2, 20.0, 20.0)
    out = sh(REPORT, clone)
    assert "5 runs -> reports/experiments.json (updated)" in out and ran_report(out)
    with (clone / "reports/results.csv").open() as f:
        bc = next(r for r in csv.DictReader(f) if r["algo"] == "bc")
    assert (bc["seeds"], bc["final_mean"]) == ("0 1 2", "36.6667")  # (40 + 50 + 20) / 3
    assert "up to date" in sh(["dvc", "status", "report"], clone)


def test_gather_and_render_run_alone(clone: Path) -> None:
    out = sh([*REPORT, "gather", "--include", "^td3_bc-", "--wandb"], clone)
    assert "--wandb ignored: wandb is not online" in out  # WANDB_MODE=offline in tests
    assert "2 runs -> reports/experiments.json (updated)" in out
    assert "Running stage" not in out  # gather only
    snapshot = json.loads((clone / SNAPSHOT).read_text())
    assert snapshot["include"] == "^td3_bc-" and snapshot["sources"] == ["dvc"]
    assert "changed deps" in sh(["dvc", "status", "report"], clone)
    sh([*REPORT, "render"], clone)
    assert "names matching `^td3_bc-`" in (clone / "reports/results.md").read_text()
