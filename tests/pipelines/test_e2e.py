"""`dvc repro` of the whole pipeline on tiny params in a temporary copy of the repository, then the
literal `dvc exp run -S lr=3e-4`, which must rerun only train and evaluate."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import minari
import pytest
import yaml
from minari.namespace import list_local_namespaces

from tests.pipelines.stage_runner import copy_repo, sh, stage_env

UP_TO_DATE = "Data and pipelines are up to date."


@pytest.fixture(scope="module")
def repro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = copy_repo(tmp_path_factory.mktemp("repo"))
    sh(["dvc", "repro"], repo)
    return repo


def test_repro_writes_every_output(repro: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(repro / "data/datasets"))
    for kind, steps in (("random", 1000), ("medium", 1500), ("expert", 1000)):
        dataset = minari.load_dataset(f"hopper/{kind}-v0")
        assert dataset.total_steps == steps
        with h5py.File(repro / f"data/datasets/hopper/{kind}-v0/data/main_data.hdf5") as f:
            assert sum(f[e]["rewards"].shape[0] for e in f) == steps
    with h5py.File(repro / "data/transitions/medium.h5") as f:
        assert f["observations"].shape[0] == 1500
    for stage in ("behavior/hopper", "preprocess/medium", "train", "evaluate"):
        json.loads((repro / f"metrics/{stage}.json").read_text())
    for kind in ("random", "medium", "expert", "medium-replay"):
        collected = json.loads((repro / f"metrics/collect/hopper/{kind}.json").read_text())
        assert collected["ref_score_source"] == "d4rl" and "normalized_score" in collected
    replay = minari.load_dataset("hopper/medium-replay-v0")
    assert replay.total_steps in (1000, 1500)  # the buffer up to the medium checkpoint
    evaluation = json.loads((repro / "metrics/evaluate.json").read_text())
    assert "evaluate/normalized_score_mean" in evaluation
    assert (repro / "models/train/agents/seed_0.pt").exists()
    runs = list((repro / "wandb").glob("offline-run-*"))
    assert len(runs) >= 3  # behavior, train, evaluate
    shown = sh(["dvc", "metrics", "show"], repro)
    assert "evaluate/normalized_score_mean" in shown
    # The report stage renders the committed, empty snapshot: a fresh clone has no experiments
    # (the workspace's own run counts once committed), and it leaves `dvc status` clean.
    assert "No experiment with a score yet" in (repro / "reports/results.md").read_text()
    assert "up to date" in sh(["dvc", "status"], repro)


def test_lr_experiment_reruns_only_training(repro: Path) -> None:
    out = sh(["dvc", "exp", "run", "-S", "lr=3e-4", "-n", "lr-test"], repro)
    for skipped in (
        "behavior@hopper",
        "reference@hopper",
        "collect@hopper-medium",
        "preprocess@medium",
        "report",
    ):
        assert f"Stage '{skipped}' didn't change, skipping" in out, out
    assert "Running stage 'report'" not in out
    for rerun in ("train", "evaluate"):
        assert f"Running stage '{rerun}'" in out, out
    table = json.loads(
        sh(["dvc", "exp", "show", "--json"], repro).split("\n", 1)[-1]
        if False
        else _exp_json(repro)
    )
    names = json.dumps(table)
    assert "lr-test" in names and "normalized_score_mean" in names


def test_a_seed_grid_reruns_only_training_and_reports_each_seed(repro: Path) -> None:
    """Training seeds apart from the data seed: three seeds retrain, the datasets stay."""
    out = sh(["dvc", "exp", "run", "-S", "train.seeds=[0,1,2]", "-n", "seeds-test"], repro)
    for skipped in ("behavior@hopper", "collect@hopper-medium", "preprocess@medium"):
        assert f"Stage '{skipped}' didn't change, skipping" in out, out
    for rerun in ("train", "evaluate"):
        assert f"Running stage '{rerun}'" in out, out
    assert sorted(p.name for p in (repro / "models/train/agents").iterdir()) == [
        "seed_0.pt",
        "seed_1.pt",
        "seed_2.pt",
    ]
    evaluation = json.loads((repro / "metrics/evaluate.json").read_text())
    per_seed = [evaluation["seeds"][str(k)]["evaluate/normalized_score_mean"] for k in range(3)]
    assert evaluation["num_seeds"] == 3
    assert evaluation["evaluate/normalized_score_mean"] == pytest.approx(sum(per_seed) / 3)
    assert "evaluate/normalized_score_mean/seed_std" in evaluation
    rows = (repro / "plots/train/eval.csv").read_text().splitlines()
    assert rows[0].startswith("step,seed,") and {r.split(",")[1] for r in rows[1:]} == {
        "0",
        "1",
        "2",
    }


def test_another_dataset_runs_only_its_own_preprocess(repro: Path) -> None:
    out = sh(
        ["dvc", "exp", "run", "-S", "preprocess.datasets=[medium,random]", "-n", "more"], repro
    )
    assert "Running stage 'preprocess@random'" in out, out
    for skipped in ("preprocess@medium", "train", "evaluate"):
        assert f"Stage '{skipped}' didn't change, skipping" in out, out
    with h5py.File(repro / "data/transitions/random.h5") as f:
        assert f["observations"].shape[0] == 1000


def test_two_sweep_trials_at_once_keep_their_own_results(repro: Path) -> None:
    """Two wandb agents on one machine: each trial is a `dvc exp run --temp`, in its own copy of
    the repository, so both experiments exist with their own params and results, the upstream
    stages are skipped (their outputs come from the cache), and the workspace is untouched."""
    workspace = {name: (repro / name).read_bytes() for name in ("params.yaml", "dvc.lock")}
    workspace_metrics = (repro / "metrics/evaluate.json").read_bytes()
    trials = {
        lr: subprocess.Popen(
            [sys.executable, "-m", "pipelines.sweep_trial", f"lr={lr}", "train.steps=200"],
            cwd=repro,
            env=stage_env(repro),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for lr in ("0.002", "0.0005")
    }
    outputs = {lr: trial.communicate(timeout=900) for lr, trial in trials.items()}
    for lr, (out, err) in outputs.items():
        log = out + err
        assert trials[lr].returncode == 0, log
        assert "Running stage 'train'" in log and "Running stage 'evaluate'" in log, log
        for skipped in ("behavior@hopper", "collect@hopper-medium", "preprocess@medium", "report"):
            assert f"Stage '{skipped}' didn't change, skipping" in log, log
        result = json.loads(out.strip().splitlines()[-1])
        assert "evaluate/normalized_score_mean" in result and result["steps"] == 200
        ref = next(
            r
            for r in sh(["git", "for-each-ref", "--format=%(refname)", "refs/exps/"], repro).split()
            if r.endswith("/" + result["experiment"])
        )
        lock = yaml.safe_load(sh(["git", "show", f"{ref}:dvc.lock"], repro))
        assert lock["stages"]["train"]["params"]["params.yaml"]["lr"] == float(lr)
        # The data stays in DVC's cache: the copy lacks DVC's untracked .gitignore files and DVC
        # git-adds preprocess's folder dependency, so only the root .gitignore keeps it out.
        committed = sh(["git", "ls-tree", "-r", "--name-only", ref], repro).split()
        assert not [path for path in committed if path.startswith("data/")], committed
    assert {name: (repro / name).read_bytes() for name in workspace} == workspace
    assert (repro / "metrics/evaluate.json").read_bytes() == workspace_metrics


def test_push_wipe_pull_leaves_nothing_to_rerun(
    repro: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A colleague's view of a remote: after `dvc push`, deleting the cache and the whole
    data/datasets folder, `dvc pull` restores everything preprocess depends on, so `dvc status`
    is clean and nothing reruns. (The collect stages used to write the namespace's
    namespace_metadata.json, which no stage declared: a pull left it out and preprocess, train and
    evaluate looked stale.) Last in the module: it rebuilds the cache the other tests used."""
    assert UP_TO_DATE in sh(["dvc", "status"], repro)
    store = tmp_path / "store"
    sh(["dvc", "remote", "add", "--local", "wipe-test", str(store)], repro)
    try:
        sh(["dvc", "push", "-r", "wipe-test"], repro)
        shutil.rmtree(repro / ".dvc/cache")
        shutil.rmtree(repro / "data/datasets")
        sh(["dvc", "pull", "-r", "wipe-test"], repro)
    finally:
        sh(["dvc", "remote", "remove", "--local", "wipe-test"], repro)
    assert UP_TO_DATE in sh(["dvc", "status"], repro)
    assert "Running stage" not in sh(["dvc", "repro"], repro)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(repro / "data/datasets"))
    assert "hopper" in list_local_namespaces()  # Minari's own file came back too


def _exp_json(repo: Path) -> str:
    return sh(["dvc", "exp", "show", "--json"], repo)
