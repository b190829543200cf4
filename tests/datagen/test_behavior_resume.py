"""Behaviour SAC killed mid-run resumes from its last episode-end state to the very same outputs."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from core.checkpoint import load_checkpoint, save_checkpoint
from core.resume import load_resume_state
from datagen.behavior.config import BehaviorConfig, SACConfig
from datagen.behavior.run import RESUME_KIND, behavior_fingerprint
from datagen.behavior.train import train_behavior
from offline_rl.speed import denormals_are_flushed
from offline_rl.tracking import RunLogger

CONFIG = BehaviorConfig(
    steps=240,
    random_steps=160,
    batch_size=32,
    checkpoint_steps=(120, 240),
    eval_episodes=1,
    log_interval=20,
    resume_every=30,
    sac=SACConfig(hidden=(16, 16)),
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


def run(
    workdir: Path,
    resume: bool = True,
    kill_at: int | None = None,
    config: BehaviorConfig = CONFIG,
    env_id: str = "Hopper-v5",
    seed: int = 3,
) -> Path:
    """The behaviour stage's loop into `workdir`, its logger raising `Killed` at `kill_at`."""

    def factory(run_id: str | None) -> RunLogger:
        logger = KillingLogger.files_only(
            {k: workdir / f"{k}.csv" for k in ("train", "losses", "eval")}, run_id=run_id
        )
        logger.kill_at = kill_at
        return logger

    out = workdir / "behavior"
    train_behavior(
        env_id,
        config,
        seed,
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
        names: list[str] = []
        fa.visit(lambda name: names.append(name) if isinstance(fa[name], h5py.Dataset) else None)
        assert names
        for key in names:  # Dict observations are groups of arrays
            np.testing.assert_array_equal(fa[key][()], fb[key][()], err_msg=key)
    for policy in a.glob("step_*.pt"):
        pa, pb = load_checkpoint(policy), load_checkpoint(b / policy.name)
        assert pa["eval_returns"] == pb["eval_returns"]
        if pa["algo"] == "waypoint":  # a scripted controller: its gains and noise are all of it
            assert (pa["config"], pa["noise"]) == (pb["config"], pb["noise"]), policy.name
            continue
        part = "q" if pa["algo"] == "dqn" else "actor"  # the policy's weights
        for name, tensor in pa[part].items():
            assert torch.equal(tensor, pb[part][name]), (policy.name, name)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run(tmp_path_factory.mktemp("straight"), resume=False)


@pytest.mark.slow  # three short SAC runs: about 40 s of CPU, minutes on a shared machine
def test_killed_run_resumes_to_identical_outputs(uninterrupted: Path, tmp_path: Path) -> None:
    with pytest.raises(Killed):
        run(tmp_path, kill_at=210)
    assert not (tmp_path / "behavior").exists()  # no half-written output folder
    state = load_checkpoint(tmp_path / "resume.pt")
    assert not state["finished"] and 160 <= state["step"] < 210
    run(tmp_path)
    assert_same_outputs(uninterrupted, tmp_path / "behavior")
    rows = (tmp_path / "losses.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(180, 241, 20))
    assert load_checkpoint(tmp_path / "resume.pt")["finished"]

    # DVC deletes the non-persisted output folder before a rerun: the finished state rewrites it
    # without training (any training step would log, and so raise)
    shutil.rmtree(tmp_path / "behavior")
    run(tmp_path, kill_at=1)
    assert_same_outputs(uninterrupted, tmp_path / "behavior")


@pytest.mark.slow  # two short SAC runs, one of them killed and resumed
def test_a_run_with_the_cpu_speed_switches_resumes_to_identical_outputs(tmp_path: Path) -> None:
    fast = CONFIG.model_copy(
        update={"precision": "bf16", "flush_denormals": True, "critic_thread": True}
    )
    straight = run(tmp_path / "straight", resume=False, config=fast)
    with pytest.raises(Killed):
        run(tmp_path / "killed", kill_at=210, config=fast)
    assert_same_outputs(straight, run(tmp_path / "killed", config=fast))


def test_target_return_stops_at_the_first_checkpoint_reaching_it(tmp_path: Path) -> None:
    reached_at_once = CONFIG.model_copy(update={"target_return": -1e9})
    out = run(tmp_path, config=reached_at_once)
    index = json.loads((out / "checkpoints.json").read_text())
    assert index["steps"] == 120 and list(index["checkpoints"]) == ["step_120"]
    assert sorted(p.name for p in out.glob("step_*.pt")) == ["step_120.pt"]
    with h5py.File(out / "replay.h5") as f:
        assert len(f["rewards"]) == 120
        assert f["terminals"][-1] or f["timeouts"][-1]  # the cut episode is closed
    assert load_checkpoint(tmp_path / "resume.pt")["finished"]
    # a rerun of the finished run trains nothing (any log call would raise) and rewrites the same
    shutil.rmtree(out)
    run(tmp_path, kill_at=1, config=reached_at_once)
    assert json.loads((out / "checkpoints.json").read_text()) == index


def test_state_of_another_configuration_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = tmp_path / "resume.pt"
    save_checkpoint(path, {"kind": "behavior_resume", "fingerprint": "other", "step": 10})
    fingerprint = behavior_fingerprint("Hopper-v5", CONFIG, 3)
    assert load_resume_state(path, fingerprint, {"kind": RESUME_KIND}) is None
    assert "belongs to another configuration" in caplog.text
    assert fingerprint == behavior_fingerprint(
        "Hopper-v5", CONFIG.model_copy(update={"resume_every": 7}), 3
    )
    assert fingerprint != behavior_fingerprint("Hopper-v5", CONFIG, 4)


def test_flushing_denormals_is_repeatable_and_part_of_the_fingerprint(tmp_path: Path) -> None:
    """`flush_denormals` gives other last bits but the same outputs run after run; it leaves the
    process's floating-point mode as it found it, and an old run's fingerprint (switch off) as it
    was before the switch existed."""
    flushed = CONFIG.model_copy(update={"flush_denormals": True})
    modes: set[bool] = set()

    class ModeLogger(RunLogger):  # notes the mode the loop runs in at each of its log calls
        def log(self, curve: str, step: int, metrics: dict[str, float]) -> None:
            modes.add(denormals_are_flushed())
            super().log(curve, step, metrics)

    first = tmp_path / "first"
    train_behavior(
        "Hopper-v5",
        flushed,
        3,
        first,
        lambda _: ModeLogger.files_only(
            {k: tmp_path / f"{k}.csv" for k in ("train", "losses", "eval")}
        ),
        progress=False,
    )
    assert modes == {True}  # flushed all through training
    assert not denormals_are_flushed()  # and not after it
    assert_same_outputs(first, run(tmp_path / "second", resume=False, config=flushed))
    assert behavior_fingerprint("Hopper-v5", flushed, 3) != behavior_fingerprint(
        "Hopper-v5", CONFIG, 3
    )
    # computed by the code before the switch existed: a resume state saved then still matches
    assert behavior_fingerprint("Hopper-v5", CONFIG, 3) == "9f496c7557fefa7e"


def test_critic_thread_run_is_a_one_thread_run_bit_for_bit(tmp_path: Path) -> None:
    """`critic_thread` changes the stage's speed, not its outputs: a run with it equals a run
    without it at one intra-op thread, replay, policies and returns."""
    threaded = CONFIG.model_copy(update={"critic_thread": True})
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = run(tmp_path / "threaded", resume=False, config=threaded)
        assert torch.get_num_threads() == 2  # the stage's one thread ends with it
        torch.set_num_threads(1)
        assert_same_outputs(run(tmp_path / "sequential", resume=False), out)
    finally:
        torch.set_num_threads(previous)
    assert behavior_fingerprint("Hopper-v5", threaded, 3) != behavior_fingerprint(
        "Hopper-v5", CONFIG, 3
    )


def test_unreadable_state_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "resume.pt"
    path.write_bytes(b"truncated")
    assert load_resume_state(path, "f", {"kind": RESUME_KIND}) is None
    assert f"{path}: unreadable checkpoint" in caplog.text
