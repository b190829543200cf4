"""Stages killed at random moments (SIGKILL, SIGTERM, SIGINT) leave their outputs absent or whole,
and a rerun completes with exactly the result of an uninterrupted run.

Each stage runs as `python -m pipelines.<stage>` in a scratch directory holding params.yaml and
its inputs (the code comes from this checkout), the way `dvc repro` runs it.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import minari
import numpy as np
import pytest
import torch
import yaml

from core.checkpoint import load_checkpoint
from offline_rl.agent import agent_files, load_agents
from tests.pipelines.params_edit import with_changes
from tests.pipelines.stage_runner import start_stage

pytestmark = pytest.mark.slow

SIGNALS = [signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGKILL]


def write_params(workdir: Path, changes: dict[str, Any]) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "params.yaml").write_text(yaml.safe_dump(with_changes(changes)))
    return workdir


def run_to_end(stage: str, workdir: Path) -> tuple[float, str]:
    started = time.perf_counter()
    process = start_stage(stage, workdir)
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output
    return time.perf_counter() - started, output


def kill_repeatedly(
    stage: str,
    workdir: Path,
    duration: float,
    check: Callable[[Path], None],
    seed: int,
    wait_for: Path | None = None,
) -> list[str]:
    """Start the stage and signal it at seeded random moments within `duration`; after each kill,
    `check` the outputs. With `wait_for`, the last kill comes only once that file exists."""
    rng = random.Random(seed)
    events = []
    for index, sig in enumerate(SIGNALS):
        process = start_stage(stage, workdir)
        if wait_for is not None and index == len(SIGNALS) - 1:
            while not wait_for.exists() and process.poll() is None:
                time.sleep(0.05)
        delay = rng.uniform(0.0, duration)
        try:
            output, _ = process.communicate(timeout=delay)
            events.append(f"{sig.name} came too late: finished in under {delay:.1f} s")
        except subprocess.TimeoutExpired:
            process.send_signal(sig)
            output, _ = process.communicate(timeout=120)
            events.append(f"{sig.name} after {delay:.1f} s: exit {process.returncode}")
            if "error: interrupted" in output:  # SIGTERM/SIGINT once the stage entry runs
                assert process.returncode == 130 and "Traceback" not in output, output
                assert not list(workdir.rglob(".*tmp*")), output  # temporaries removed
        check(workdir)
    return events


# --- training -------------------------------------------------------------------------------

TRAIN_CHANGES = {
    "train.steps": 400,
    "train.checkpoint_interval": 50,
    "train.eval_interval": 400,
    "train.eval_episodes": 1,
    "train.log_interval": 50,
    "train.device": "cpu",
    "train.seeds": [0, 3],  # two seeds: a resume restores both
}


def check_train_outputs(workdir: Path) -> None:
    agents = workdir / "models/train/agents"
    if agents.exists():  # whole: every seed's agent
        loaded = load_agents(agent_files(agents), torch.device("cpu"))
        assert loaded.algo_name == "td3_bc" and loaded.seeds == (0, 3)
    checkpoint = workdir / "models/train/checkpoint.pt"
    if checkpoint.exists():
        assert load_checkpoint(checkpoint)["step"] % 50 == 0


def agent_weights(workdir: Path) -> dict[str, torch.Tensor]:
    agents = workdir / "models/train/agents"
    return {
        f"{path.stem}.{key}": value
        for path in agent_files(agents)
        for key, value in load_checkpoint(path)["networks"]["actor"].items()
    }


def test_killed_training_reruns_to_the_same_agent(random_transitions: Path, tmp_path: Path) -> None:
    dirs = {}
    for name in ("straight", "killed"):
        dirs[name] = write_params(tmp_path / name, TRAIN_CHANGES)
        (dirs[name] / "data/transitions").mkdir(parents=True)
        shutil.copy(random_transitions, dirs[name] / "data/transitions/medium.h5")
    duration, _ = run_to_end("train", dirs["straight"])
    events = kill_repeatedly(
        "train",
        dirs["killed"],
        duration,
        check_train_outputs,
        seed=0,
        wait_for=dirs["killed"] / "models/train/checkpoint.pt",
    )
    _, output = run_to_end("train", dirs["killed"])
    assert "resuming td3_bc from step" in output, (events, output)
    expected, resumed = agent_weights(dirs["straight"]), agent_weights(dirs["killed"])
    for key in expected:
        assert torch.equal(expected[key], resumed[key]), key
    assert not list(dirs["killed"].rglob(".*tmp*"))


# --- generation -----------------------------------------------------------------------------

COLLECT_CHANGES = {
    "collect.datasets": {"random": {"policy": "random", "steps": 3000}},
    "collect.kinds": ["random"],
    "collect.chunk_episodes": 4,
}
DATASET = Path("data/datasets/hopper/random-v0")


def dataset_arrays(workdir: Path) -> dict[str, np.ndarray]:
    with h5py.File(workdir / DATASET / "data/main_data.hdf5", "r") as f:
        arrays = {}
        for episode in f:
            for key in ("observations", "actions", "rewards", "terminations", "truncations"):
                arrays[f"{episode}/{key}"] = f[episode][key][()]
    return arrays


def check_dataset(workdir: Path) -> None:
    folder = workdir / DATASET
    if folder.exists():
        metadata = json.loads((folder / "data/metadata.json").read_text())
        assert metadata["total_steps"] == 3000
        assert sum(a.shape[0] for k, a in dataset_arrays(workdir).items() if "rewards" in k) == 3000


def test_killed_collection_reruns_to_the_same_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = write_params(tmp_path / "straight", COLLECT_CHANGES)
    killed = write_params(tmp_path / "killed", COLLECT_CHANGES)
    for workdir in (straight, killed):
        run_to_end("reference", workdir)  # D4RL's published scores: no behaviour policy needed
    duration, _ = run_to_end("collect", straight)
    events = kill_repeatedly("collect", killed, duration, check_dataset, seed=1)
    run_to_end("collect", killed)
    expected, rerun = dataset_arrays(straight), dataset_arrays(killed)
    assert expected.keys() == rerun.keys(), events
    for key, value in expected.items():
        np.testing.assert_array_equal(value, rerun[key], err_msg=key)
    assert not list((killed / "data").rglob(".*tmp*"))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(killed / "data/datasets"))
    assert minari.load_dataset("hopper/random-v0").total_steps == 3000


# --- behaviour training ---------------------------------------------------------------------

BEHAVIOR_CHANGES = {
    "behavior.steps": 400,
    "behavior.random_steps": 250,
    "behavior.batch_size": 64,
    "behavior.checkpoint_steps": [200, 400],
    "behavior.eval_episodes": 1,
    "behavior.log_interval": 50,
    "behavior.resume_every": 50,
    "behavior.sac.hidden": [32, 32],
}


BEHAVIOR = Path("models/behavior/hopper")  # behavior@hopper's folder; tiny params list only hopper
BEHAVIOR_RESUME = Path("models/behavior_resume/hopper.pt")


def check_behavior(workdir: Path) -> None:
    folder = workdir / BEHAVIOR
    if folder.exists():
        assert sorted(p.name for p in folder.iterdir()) == [
            "checkpoints.json",
            "replay.h5",
            "step_200.pt",
            "step_400.pt",
        ]
        with h5py.File(folder / "replay.h5", "r") as f:
            assert f["observations"].shape[0] == 400
    state = workdir / BEHAVIOR_RESUME
    if state.exists():
        load_checkpoint(state, expect={"kind": "behavior_resume"})


def test_killed_behaviour_training_resumes_to_the_same_policies(tmp_path: Path) -> None:
    straight = write_params(tmp_path / "straight", BEHAVIOR_CHANGES)
    killed = write_params(tmp_path / "killed", BEHAVIOR_CHANGES)
    duration, _ = run_to_end("behavior", straight)
    events = kill_repeatedly(
        "behavior",
        killed,
        duration,
        check_behavior,
        seed=2,
        wait_for=killed / BEHAVIOR_RESUME,
    )
    _, output = run_to_end("behavior", killed)
    assert "resuming behaviour SAC from step" in output, (events, output)
    a, b = straight / BEHAVIOR, killed / BEHAVIOR
    assert (a / "checkpoints.json").read_text() == (b / "checkpoints.json").read_text()
    with h5py.File(a / "replay.h5") as fa, h5py.File(b / "replay.h5") as fb:
        for key in fa:
            np.testing.assert_array_equal(fa[key][()], fb[key][()], err_msg=key)
    for name in ("step_200.pt", "step_400.pt"):
        pa, pb = load_checkpoint(a / name)["actor"], load_checkpoint(b / name)["actor"]
        for key in pa:
            assert torch.equal(pa[key], pb[key]), (name, key)
