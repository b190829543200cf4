"""What the benchmarks share: a default dataset, random rows, the export for d3rlpy, and the d3rlpy
worker call."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import numpy as np
import torch

from benchmarks.algorithms import HIDDEN as HIDDEN
from benchmarks.algorithms import our_algorithm as our_algorithm
from benchmarks.d3rlpy_env import ensure_d3rlpy_env
from datagen.behavior.policies import SACPolicy
from datagen.collection.minari_writer import DatasetInfo, write_dataset
from datagen.collection.reference import d4rl_reference
from datagen.collection.rollouts import rollout_episodes
from datagen.preprocessing.config import PreprocessConfig
from datagen.preprocessing.preprocess import preprocess
from offline_rl.buffer import ReplayBuffer
from transitions.loader import load_transitions

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BEHAVIOR = ROOT / "tests" / "fixtures" / "hopper_sac_behavior.pt"
WORKER = Path(__file__).resolve().parent / "d3rlpy_worker.py"
ENV_ID = "Hopper-v5"
DATASET_ID = "hopper/medium-v0"


def medium_dataset(workdir: Path, steps: int, seed: int = 0) -> tuple[Path, Path]:
    """A 'medium' Minari dataset from the SAC behaviour fixture and its transitions file.

    Returns (Minari dataset folder, transitions file); both are reused when already there."""
    root = workdir / "datasets"
    folder = root / DATASET_ID
    transitions = workdir / f"medium-{steps}.h5"
    if not folder.exists():
        policy = SACPolicy(BEHAVIOR, deterministic=False)
        info = DatasetInfo(
            dataset_id=DATASET_ID,
            env_id=ENV_ID,
            algorithm_name=f"SAC behaviour policy {BEHAVIOR.name} (stochastic)",
            description="benchmark dataset",
            code_permalink="benchmarks/common.py",
        )
        torch.manual_seed(seed)  # the policy samples from torch's generator
        episodes = rollout_episodes(ENV_ID, policy, steps, seed, num_envs=8)
        write_dataset(root, info, episodes, d4rl_reference(ENV_ID))
    if not transitions.exists():
        preprocess([(DATASET_ID, folder)], transitions, PreprocessConfig())
    return folder, transitions


def random_buffer(
    rows: int,
    device: torch.device | str = "cpu",
    seeds: Sequence[int] = (0,),
    seed: int = 0,
    terminal_fraction: float = 0.05,
    with_next_actions: bool = False,
) -> ReplayBuffer:
    """Random rows of Hopper's shapes (11-wide observations, 3 actions in [-1, 1]) made on the
    host, sampled for training `seeds`: data to time or check updates where no environment or
    dataset is at hand (a GPU machine)."""
    g = torch.Generator().manual_seed(seed)
    obs_dim, act_dim = 11, 3
    buffer = ReplayBuffer(
        obs_dim,
        act_dim,
        rows,
        torch.device(device),
        seeds=seeds,
        with_next_actions=with_next_actions,
    )
    fields = [
        torch.randn(rows, obs_dim, generator=g),
        torch.rand(rows, act_dim, generator=g) * 2 - 1,
        torch.randn(rows, generator=g),
        torch.randn(rows, obs_dim, generator=g),
        (torch.rand(rows, generator=g) < terminal_fraction).float(),
    ]
    if with_next_actions:
        fields.append(torch.rand(rows, act_dim, generator=g) * 2 - 1)
    buffer.add(*fields)
    return buffer


def export_for_d3rlpy(transitions: Path, out: Path) -> Path:
    """Write the transitions as d3rlpy's MDPDataset arrays, with our transforms already applied.

    d3rlpy rebuilds transitions from consecutive observations of an episode and drops the last
    step of a timed-out episode; appending that step's next observation as one extra row (zero
    action and reward, flagged as the timeout) gives d3rlpy exactly our set of transitions."""
    data = load_transitions(transitions)
    with h5py.File(transitions, "r") as f:
        episode_ids = np.asarray(f["episode_ids"][()])
    obs = data.observations.numpy()
    next_obs = data.next_observations.numpy()
    actions = data.actions.numpy()
    rewards = data.rewards.numpy()
    terminals = data.dones.numpy()
    n = len(data)
    ends = np.flatnonzero(np.r_[episode_ids[1:] != episode_ids[:-1], True])
    open_ends = ends[terminals[ends] == 0]
    insert_at = open_ends + 1
    timeouts = np.zeros(n, dtype=np.float32)
    arrays = {
        "observations": np.insert(obs, insert_at, next_obs[open_ends], axis=0),
        "actions": np.insert(actions, insert_at, 0.0, axis=0),
        "rewards": np.insert(rewards, insert_at, 0.0),
        "terminals": np.insert(terminals, insert_at, 0.0),
        "timeouts": np.insert(timeouts, insert_at, 1.0),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        observations=arrays["observations"],
        actions=arrays["actions"],
        rewards=arrays["rewards"],
        terminals=arrays["terminals"],
        timeouts=arrays["timeouts"],
    )
    return out


def run_d3rlpy(mode: str, data: Path, algo: str, out: Path, **options: Any) -> dict[str, Any]:
    """Run the d3rlpy worker in d3rlpy's venv; returns its JSON result."""
    python = ensure_d3rlpy_env()
    command = [str(python), str(WORKER), mode, "--data", str(data), "--algo", algo]
    command += ["--out", str(out)]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"d3rlpy worker failed ({' '.join(command)}):\n{result.stderr[-3000:]}")
    loaded: dict[str, Any] = json.loads(out.read_text())
    return loaded


def env_action_space(env_id: str = ENV_ID) -> gym.spaces.Box:
    space = gym.make(env_id).action_space
    assert isinstance(space, gym.spaces.Box)
    return space


def mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def machine() -> dict[str, Any]:
    import os
    import platform

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
