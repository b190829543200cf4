"""A sequence model through the train and evaluate stages' entries: the Decision Transformer
trains on windows, saves its agents, resumes, and is evaluated acting from its history; its
windows come from memory or from the memory-mapped file alike."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.pipelines.params_edit import with_changes
from tests.pipelines.stage_runner import REPO, sh

SHORT = {
    "train.algo": "dt",
    "train.steps": 20,
    "train.batch_size": 16,
    "train.log_interval": 10,
    "train.eval_interval": 20,
    "train.checkpoint_interval": 10,
    "train.eval_episodes": 1,
    "train.seeds": [0, 1],
    "evaluate.episodes": 1,
    "evaluate.video": False,
    "wandb.log_video": False,
}


def workdir(tmp_path: Path, transitions: Path, changes: dict[str, Any]) -> Path:
    (tmp_path / "data/transitions").mkdir(parents=True, exist_ok=True)
    shutil.copy(transitions, tmp_path / "data/transitions/medium.h5")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_changes(SHORT | changes)))
    return tmp_path


def stage(name: str, cwd: Path) -> str:
    return sh(
        [sys.executable, "-m", f"pipelines.{name}"], cwd, code=REPO, env={"WANDB_MODE": "disabled"}
    )


def test_dt_trains_resumes_and_is_evaluated(tmp_path: Path, random_transitions: Path) -> None:
    cwd = workdir(tmp_path, random_transitions, {})
    stage("train", cwd)
    assert sorted(p.name for p in (cwd / "models/train/agents").iterdir()) == [
        "seed_0.pt",
        "seed_1.pt",
    ]
    metrics = json.loads((cwd / "metrics/train.json").read_text())
    assert metrics["algo"] == "dt" and metrics["num_seeds"] == 2
    assert "eval/return_mean" in metrics
    assert "resuming dt from step 20" in stage("train", cwd)
    stage("evaluate", cwd)
    evaluated = json.loads((cwd / "metrics/evaluate.json").read_text())
    assert evaluated["algo"] == "dt" and "evaluate/return_mean" in evaluated


def test_dt_trains_from_disk_and_resumes_in_memory(
    tmp_path: Path, random_transitions: Path
) -> None:
    """Windows gathered from the memory-mapped file are the windows in memory: a run finished
    from disk is the same run in memory, which resumes at its last step."""
    cwd = workdir(tmp_path, random_transitions, {"train.storage": "disk"})
    assert "train.storage: disk" in stage("train", cwd)
    (cwd / "params.yaml").write_text(
        yaml.safe_dump(with_changes(SHORT | {"train.storage": "memory"}))
    )
    again = stage("train", cwd)
    assert "train.storage: memory" in again
    assert "resuming dt from step 20" in again
