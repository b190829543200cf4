"""Trained agents on disk, one file per training seed: the algorithm's name, config and networks
plus the data's statistics, everything evaluation needs to rebuild the policy without the
training data. A file holds one seed and loads alone; `load_agents` stacks several files into
one multi-seed algorithm, so that their evaluation runs in one batched environment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.atomic import atomic_dir
from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from offline_rl.algos.base import Algorithm
from offline_rl.algos.registry import ALGORITHMS, make_algorithm
from offline_rl.evaluation import AgentPolicy
from offline_rl.seeds import load_networks_state, networks_state, stack_networks, unstack_networks
from transitions.metadata import TransitionsMeta


@dataclass
class LoadedAgent:
    """The agents of `seeds` (one or several), stacked into one algorithm."""

    algo_name: str
    algo: Algorithm
    meta: TransitionsMeta
    device: torch.device
    seeds: tuple[int, ...]

    def policy(self) -> AgentPolicy:
        return AgentPolicy.of(self.algo, self.meta, self.device, seeds=len(self.seeds))


def agent_path(folder: Path, seed: int) -> Path:
    return folder / f"seed_{seed}.pt"


def save_agents(
    folder: Path,
    algo_name: str,
    algo: Algorithm,
    meta: TransitionsMeta,
    seeds: Sequence[int],
    extra: dict[str, Any] | None = None,
) -> list[Path]:
    """`folder`/seed_<k>.pt for each training seed k, written together (atomically)."""
    state = networks_state(algo)
    paths = []
    with atomic_dir(folder) as tmp:
        for index, seed in enumerate(seeds):
            payload = {
                "kind": "agent",
                "algo": algo_name,
                "config": algo.config.model_dump(),
                "networks": unstack_networks(state, index, len(seeds)),
                "meta": meta.to_dict(),
                "seed": seed,
                **(extra or {}),
            }
            save_checkpoint(agent_path(tmp, seed), payload)
            paths.append(agent_path(folder, seed))
    return paths


def load_agents(paths: Sequence[Path], device: torch.device) -> LoadedAgent:
    """The agents of `paths` (one per seed, of one algorithm, config and dataset) as one
    algorithm of as many seeds."""
    if not paths:
        raise CheckpointError("no agent files to load")
    payloads = [load_checkpoint(path, expect={"kind": "agent"}) for path in paths]
    first, name = payloads[0], payloads[0].get("algo")
    if name not in ALGORITHMS:
        raise CheckpointError(f"{paths[0]}: unknown algorithm {name!r}")
    for path, payload in zip(paths[1:], payloads[1:], strict=True):
        for key in ("algo", "config", "meta"):
            if payload.get(key) != first.get(key):
                raise CheckpointError(
                    f"{path}: its {key} differs from {paths[0]}'s; agents evaluated together "
                    "must come from one training run"
                )
    _, config_model = ALGORITHMS[name]
    seeds = tuple(int(p.get("seed", 0)) for p in payloads)
    try:
        config = config_model.model_validate(first["config"])
        meta = TransitionsMeta.from_dict(first["meta"])
        algo = make_algorithm(name, meta.observations, meta.act_dim, config, device, seeds)
        load_networks_state(algo, stack_networks([p["networks"] for p in payloads]))
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        # e.g. another algorithm's weights, or a file from an older version of the code
        detail = str(error).splitlines()[0][:200] if str(error) else repr(error)
        raise CheckpointError(
            f"{paths[0]}: the saved config or networks do not fit {name} "
            f"({type(error).__name__}: {detail}); retrain with this version"
        ) from None
    return LoadedAgent(str(name), algo, meta, device, seeds)


def load_agent(path: Path, device: torch.device) -> LoadedAgent:
    """One seed's agent."""
    return load_agents([path], device)


def agent_files(folder: Path) -> list[Path]:
    """The agent files of a training run's folder, in seed order."""
    paths = sorted(folder.glob("seed_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    if not paths:
        raise CheckpointError(f"{folder}: no agent files (seed_<k>.pt); run the train stage")
    return paths
