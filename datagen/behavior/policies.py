"""Behaviour policies as batched numpy callables: uniform random and saved SAC checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from core.checkpoint import CheckpointError, load_checkpoint
from datagen.behavior.config import SACConfig
from datagen.behavior.sac import SAC


class RandomPolicy:
    """Uniform actions from the env's box, from a seeded generator (deterministic per seed)."""

    name = "random"

    def __init__(self, action_space: gym.spaces.Box, seed: int) -> None:
        self.low = action_space.low.astype(np.float32)
        self.high = action_space.high.astype(np.float32)
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.rng.uniform(self.low, self.high, size=(obs.shape[0], self.low.shape[0])).astype(
            np.float32
        )


class SACPolicy:
    """A behaviour checkpoint; stochastic by default, as D4RL's datasets sample their policies,
    drawing from its own random stream (`seed`), so a collection repeats exactly."""

    def __init__(
        self,
        checkpoint: str | Path,
        deterministic: bool = False,
        device: str = "cpu",
        seed: int = 0,
    ) -> None:
        payload = load_checkpoint(checkpoint, expect={"algo": "sac"})
        self.name = Path(checkpoint).stem
        self.checkpoint = str(checkpoint)
        self.eval_return = float(payload.get("eval_return_mean", float("nan")))
        self.device = torch.device(device)
        try:
            agent = SAC(
                payload["obs_dim"],
                payload["act_dim"],
                SACConfig(**payload["config"]),
                self.device,
                seed=seed,
            )
            agent.actor.load_state_dict(upgrade_actor_state(payload["actor"]))
            self.low = np.asarray(payload["action_low"], dtype=np.float32)
            self.high = np.asarray(payload["action_high"], dtype=np.float32)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(
                f"{checkpoint}: not a whole SAC behaviour checkpoint ({type(error).__name__}: "
                f"{str(error).splitlines()[0][:200] if str(error) else ''})"
            ) from None
        self.agent = agent
        self.deterministic = deterministic

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        unit = self.agent.act(obs_t[None], deterministic=self.deterministic)[0].cpu().numpy()
        return np.asarray(self.low + (unit + 1.0) * 0.5 * (self.high - self.low), dtype=np.float32)


def upgrade_actor_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A behaviour actor saved before the networks gained their seed dimension (plain Linear
    trunk, separate mean and log-std heads) in today's layout: the same function, so checkpoints
    of earlier behaviour runs (and the test fixture) keep working."""
    if "mean.weight" not in state:
        return state
    upgraded = {}
    for key, value in state.items():
        if key.startswith("trunk."):
            upgraded[key] = value.t()[None] if key.endswith("weight") else value[None, None]
    # the old trunk ended at its last Linear and a separate ReLU followed: same layer indices
    upgraded["head.weight"] = torch.cat([state["mean.weight"], state["log_std.weight"]]).t()[None]
    upgraded["head.bias"] = torch.cat([state["mean.bias"], state["log_std.bias"]])[None, None]
    return upgraded


def actor_checkpoint(
    agent: SAC,
    obs_dim: int,
    act_dim: int,
    action_space: gym.spaces.Box,
    step: int,
    eval_returns: list[float],
    env_id: str,
) -> dict[str, Any]:
    """What collection needs of a behaviour policy (its actor, not the optimiser state)."""
    return {
        "algo": "sac",
        "env_id": env_id,
        "step": step,
        "obs_dim": obs_dim,
        "act_dim": act_dim,
        "config": agent.config.model_dump(),
        "actor": agent.actor.state_dict(),
        "action_low": action_space.low.tolist(),
        "action_high": action_space.high.tolist(),
        "eval_returns": eval_returns,
        "eval_return_mean": float(np.mean(eval_returns)) if eval_returns else float("nan"),
    }
