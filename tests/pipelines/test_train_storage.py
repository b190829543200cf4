"""train.storage in the train stage: what makes a checkpoint resumable is the run's
configuration, train.storage excepted (both storages give the same batches, so a run interrupted
in one resumes in the other), and the real entry trains from disk and logs its choice."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import yaml

from pipelines.params import TrainConfig
from pipelines.train import run_fingerprint
from tests.pipelines.params_edit import with_changes
from tests.pipelines.stage_runner import REPO, sh

RUN = {"algo_config": {"alpha": 2.5}, "data": {"size": 600}, "stage": "train"}


def test_the_storage_does_not_change_the_run() -> None:
    fingerprints = {
        run_fingerprint(RUN | {"train_config": config.model_dump()}, config, seed=0)
        for config in (TrainConfig(storage=s) for s in ("memory", "disk", "auto"))
    }
    assert len(fingerprints) == 1


def test_what_changes_the_batches_or_the_learning_does() -> None:
    base = TrainConfig()
    others = [TrainConfig(steps=base.steps + 1), TrainConfig(batch_size=base.batch_size * 2)]
    reference = run_fingerprint(RUN, base, seed=0)
    assert all(run_fingerprint(RUN, config, seed=0) != reference for config in others)
    assert run_fingerprint(RUN, base, seed=1) != reference


def test_the_train_entry_trains_from_disk_and_resumes_in_memory(
    tmp_path: Path, random_transitions: Path
) -> None:
    """A finished run from disk is the same run in memory: the second process resumes at its
    last step instead of training again."""
    (tmp_path / "data/transitions").mkdir(parents=True)
    shutil.copy(random_transitions, tmp_path / "data/transitions/medium.h5")
    short = {"train.steps": 20, "train.log_interval": 10, "train.eval_interval": 20}
    short |= {"train.checkpoint_interval": 10, "train.eval_episodes": 1, "wandb.log_video": False}

    def train(storage: str) -> str:
        params = with_changes(short | {"train.storage": storage})
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        command = [sys.executable, "-m", "pipelines.train"]
        return sh(command, tmp_path, code=REPO, env={"WANDB_MODE": "disabled"})

    from_disk = train("disk")
    assert "train.storage: disk" in from_disk
    assert (tmp_path / "models/train/agents/seed_0.pt").exists()
    again = train("memory")
    assert "train.storage: memory" in again
    assert "resuming td3_bc from step 20" in again
