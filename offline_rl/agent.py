"""A trained agent on disk: the algorithm's name, config and weights plus the data's statistics,
everything evaluation needs to rebuild the policy without the training data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from offline_rl.algos import ALGORITHMS, Algorithm, make_algorithm
from offline_rl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from offline_rl.evaluation import AgentPolicy
from offline_rl.transitions import TransitionsMeta


@dataclass
class LoadedAgent:
    algo_name: str
    algo: Algorithm
    meta: TransitionsMeta
    device: torch.device

    def policy(self) -> AgentPolicy:
        return AgentPolicy(
            lambda obs: self.algo.act(obs, deterministic=True), self.meta, self.device
        )


def save_agent(
    path: Path,
    algo_name: str,
    algo: Algorithm,
    meta: TransitionsMeta,
    extra: dict[str, Any] | None = None,
) -> None:
    save_checkpoint(
        path,
        {
            "kind": "agent",
            "algo": algo_name,
            "config": algo.config.model_dump(),
            "state": algo.state_dict(),
            "meta": meta.to_dict(),
            **(extra or {}),
        },
    )


def load_agent(path: Path, device: torch.device) -> LoadedAgent:
    payload = load_checkpoint(path, expect={"kind": "agent"})
    name = payload["algo"]
    if name not in ALGORITHMS:
        raise CheckpointError(f"{path}: unknown algorithm {name!r}")
    _, config_model = ALGORITHMS[name]
    try:
        config = config_model.model_validate(payload["config"])
        meta = TransitionsMeta.from_dict(payload["meta"])
        algo = make_algorithm(name, meta.obs_dim, meta.act_dim, config, device)
        algo.load_state_dict(payload["state"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        # e.g. another algorithm's weights, or a config from an older version of the code
        detail = str(error).splitlines()[0][:200] if str(error) else repr(error)
        raise CheckpointError(
            f"{path}: the saved config or weights do not fit {name} ({type(error).__name__}: {detail})"
        ) from None
    return LoadedAgent(name, algo, meta, device)
