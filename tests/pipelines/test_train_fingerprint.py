"""What makes a train checkpoint resumable: the run's configuration, train.storage excepted (both
storages give the same batches, so a run interrupted in one resumes in the other)."""

from __future__ import annotations

from pipelines.params import TrainConfig
from pipelines.train import run_fingerprint

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
