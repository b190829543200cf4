"""Behaviour SAC killed mid-run resumes from its last episode-end state to the very same outputs."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from datagen.behavior import BehaviorConfig, train_behavior
from datagen.sac import SACConfig
from offline_rl.checkpoint import load_checkpoint
from offline_rl.tracking import RunLogger, WandbConfig

CONFIG = BehaviorConfig(
    steps=300,
    random_steps=200,
    batch_size=64,
    checkpoint_steps=(150, 300),
    eval_episodes=1,
    log_interval=20,
    resume_every=40,
    sac=SACConfig(hidden=(32, 32)),
)


class Killed(Exception):
    pass


class KillingLogger(RunLogger):
    """Raises at the first log call at or after `kill_at` (an exception in the loop = a kill)."""

    kill_at: int | None = None

    def log(self, curve: str, step: int, metrics: dict[str, float]) -> None:
        if self.kill_at is not None and step >= self.kill_at:
            raise Killed
        super().log(curve, step, metrics)


def run(workdir: Path, resume: bool = True, kill_at: int | None = None) -> Path:
    def factory(run_id: str | None) -> RunLogger:
        logger = KillingLogger(
            WandbConfig(),
            mode="disabled",
            job_type="behavior",
            name=None,
            group=None,
            run_config={},
            run_id=run_id,
            wandb_dir=workdir,
            curves={k: workdir / f"{k}.csv" for k in ("train", "losses", "eval")},
        )
        logger.kill_at = kill_at
        return logger

    out = workdir / "behavior"
    train_behavior(
        "Hopper-v5",
        CONFIG,
        3,
        out,
        factory,
        progress=False,
        resume_path=workdir / "resume.pt" if resume else None,
    )
    return out


def assert_same_outputs(a: Path, b: Path) -> None:
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    assert json.loads((a / "checkpoints.json").read_text()) == json.loads(
        (b / "checkpoints.json").read_text()
    )
    with h5py.File(a / "replay.h5") as fa, h5py.File(b / "replay.h5") as fb:
        for key in fa:
            np.testing.assert_array_equal(fa[key][()], fb[key][()], err_msg=key)
    for policy in a.glob("step_*.pt"):
        pa, pb = load_checkpoint(policy), load_checkpoint(b / policy.name)
        assert pa["eval_returns"] == pb["eval_returns"]
        for name, tensor in pa["actor"].items():
            assert torch.equal(tensor, pb["actor"][name]), (policy.name, name)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run(tmp_path_factory.mktemp("straight"), resume=False)


def test_killed_run_resumes_to_identical_outputs(uninterrupted: Path, tmp_path: Path) -> None:
    with pytest.raises(Killed):
        run(tmp_path, kill_at=260)
    assert not (tmp_path / "behavior").exists()  # no half-written output folder
    state = load_checkpoint(tmp_path / "resume.pt")
    assert not state["finished"] and 200 <= state["step"] < 260
    resumed_from = state["step"]
    run(tmp_path)
    assert_same_outputs(uninterrupted, tmp_path / "behavior")
    rows = (tmp_path / "losses.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(220, 301, 20))
    final = load_checkpoint(tmp_path / "resume.pt")
    assert final["finished"] and final["step"] == 300 and resumed_from < 300


def test_finished_state_rewrites_outputs_without_training(
    uninterrupted: Path, tmp_path: Path
) -> None:
    run(tmp_path)
    (tmp_path / "losses.csv").unlink()
    for leftover in (tmp_path / "behavior").iterdir():
        leftover.unlink()
    (tmp_path / "behavior").rmdir()  # what DVC does to a non-persisted out before a rerun
    run(tmp_path, kill_at=1)  # any training step would log, and so raise
    assert_same_outputs(uninterrupted, tmp_path / "behavior")


def test_state_of_another_configuration_is_ignored(tmp_path: Path) -> None:
    with pytest.raises(Killed):
        run(tmp_path, kill_at=260)
    state = load_checkpoint(tmp_path / "resume.pt")
    state["fingerprint"] = "other"
    torch.save(state, tmp_path / "resume.pt")
    with pytest.raises(Killed):  # starts from scratch, so it logs (and is killed) at step < 260
        run(tmp_path, kill_at=30)
