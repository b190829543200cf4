"""Behaviour policies as batched numpy callables: uniform random, saved SAC checkpoints (Box
actions), saved DQN checkpoints (Discrete actions) and saved waypoint controllers (mazes). Each takes the env's observation batch as
a vector env gives it (an array, or a dict of arrays for a Dict space, flattened here in the
checkpoint's key order) and returns the env's own actions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from core.checkpoint import CheckpointError, load_checkpoint
from datagen.behavior.config import DQNConfig, SACConfig, WaypointConfig
from datagen.behavior.dqn import DQN
from datagen.behavior.sac import SAC
from datagen.behavior.waypoint import WaypointController, noisy_action
from transitions.spaces import ObservationLayout, action_layout

BatchPolicy = Callable[[Any], np.ndarray]


def batch_size(obs: Any) -> int:
    """How many observations a vector env's batch holds (an array, or a dict of arrays)."""
    if isinstance(obs, Mapping):
        return len(next(iter(obs.values())))
    return int(obs.shape[0])


class RandomPolicy:
    """Uniform actions from the env's action space (a Box, or the n actions of a Discrete), from a
    seeded generator (deterministic per seed)."""

    name = "random"

    def __init__(self, action_space: gym.Space[Any], seed: int) -> None:
        layout = action_layout(action_space)
        self.discrete = layout.discrete
        if isinstance(action_space, gym.spaces.Box):
            self.low = action_space.low.astype(np.float32)
            self.high = action_space.high.astype(np.float32)
        self.start, self.n = layout.start, layout.num_actions
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: Any) -> np.ndarray:
        n = batch_size(obs)
        if self.discrete:
            return self.rng.integers(self.start, self.start + self.n, size=n, dtype=np.int64)
        return self.rng.uniform(self.low, self.high, size=(n, self.low.shape[0])).astype(np.float32)


def checkpoint_layout(payload: dict[str, Any]) -> ObservationLayout:
    """The observation layout a checkpoint was trained on (a Dict's keys; none saved: a Box)."""
    keys = payload.get("observation_keys")
    layout = None if keys is None else ObservationLayout.from_json(keys)
    return layout or ObservationLayout(obs_dim=int(payload["obs_dim"]))


def load_policy(
    checkpoint: str | Path, deterministic: bool = False, device: str = "cpu", seed: int = 0
) -> SACPolicy | DQNPolicy | WaypointPolicy:
    """The behaviour policy a checkpoint holds, by its `algo`: SAC, DQN or the waypoint
    controller."""
    algo = load_checkpoint(checkpoint).get("algo")
    if algo == "dqn":
        return DQNPolicy(checkpoint, deterministic, device, seed)
    if algo == "waypoint":
        return WaypointPolicy(checkpoint, deterministic, device, seed)
    return SACPolicy(checkpoint, deterministic, device, seed)  # names the checkpoint otherwise


class CheckpointPolicy:
    """What every saved behaviour policy shares: its checkpoint read and checked to be of this
    class's `algo`, named, and restored by `_restore`, any gap in it named with the file."""

    algo: ClassVar[str]

    def __init__(
        self,
        checkpoint: str | Path,
        deterministic: bool = False,
        device: str = "cpu",
        seed: int = 0,
    ) -> None:
        payload = load_checkpoint(checkpoint, expect={"algo": self.algo})
        self.name = Path(checkpoint).stem
        self.checkpoint = str(checkpoint)
        self.eval_return = float(payload.get("eval_return_mean", float("nan")))
        self.device = torch.device(device)
        self.deterministic = deterministic
        try:
            self.layout = checkpoint_layout(payload)
            self._restore(payload, seed)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(
                f"{checkpoint}: not a whole {self.algo.upper()} behaviour checkpoint "
                f"({type(error).__name__}: "
                f"{str(error).splitlines()[0][:200] if str(error) else ''})"
            ) from None

    def _restore(self, payload: dict[str, Any], seed: int) -> None:
        raise NotImplementedError


class SACPolicy(CheckpointPolicy):
    """A SAC behaviour checkpoint; stochastic by default, as D4RL's datasets sample their
    policies, drawing from its own random stream (`seed`), so a collection repeats exactly."""

    algo = "sac"

    def _restore(self, payload: dict[str, Any], seed: int) -> None:
        config = SACConfig(**payload["config"])
        self.agent = SAC(payload["obs_dim"], payload["act_dim"], config, self.device, seed=seed)
        self.agent.actor.load_state_dict(upgrade_actor_state(payload["actor"]))
        self.low = np.asarray(payload["action_low"], dtype=np.float32)
        self.high = np.asarray(payload["action_high"], dtype=np.float32)

    def __call__(self, obs: Any) -> np.ndarray:
        flat = self.layout.flatten(obs) if self.layout.keys else obs
        obs_t = torch.as_tensor(flat, dtype=torch.float32, device=self.device)
        unit = self.agent.act(obs_t[None], deterministic=self.deterministic)[0].cpu().numpy()
        return np.asarray(self.low + (unit + 1.0) * 0.5 * (self.high - self.low), dtype=np.float32)


class DQNPolicy(CheckpointPolicy):
    """A DQN behaviour checkpoint. Stochastic by default, as D4RL sampled its SAC policies rather
    than taking their means: epsilon-greedy with the checkpoint's `final_epsilon`, the way the
    policy acted at the end of its training; greedy with `deterministic`. Its draws come from its
    own generator (`seed`), one uniform and one action per observation on every call, so a
    collection repeats exactly."""

    algo = "dqn"

    def _restore(self, payload: dict[str, Any], seed: int) -> None:
        config = DQNConfig(**payload["config"])
        self.n, self.start = int(payload["num_actions"]), int(payload["action_start"])
        observations = self.layout if self.layout.image else int(payload["obs_dim"])
        self.agent = DQN(observations, self.n, config, self.device)
        self.agent.q.load_state_dict(payload["q"])
        self.epsilon = 0.0 if self.deterministic else config.final_epsilon
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: Any) -> np.ndarray:
        obs_t = torch.as_tensor(self.layout.flatten(obs), dtype=torch.float32, device=self.device)
        greedy = self.agent.act(obs_t[None])[0].cpu().numpy()
        if not self.deterministic:
            explore = self.rng.random(len(greedy)) < self.epsilon
            uniform = self.rng.integers(0, self.n, size=len(greedy))
            greedy = np.where(explore, uniform, greedy)
        return (greedy + self.start).astype(np.int64)


class WaypointPolicy(CheckpointPolicy):
    """A waypoint checkpoint: the maze controller plus its noise, drawn from its own generator
    (`seed`), so a collection repeats exactly; `deterministic` drops the noise."""

    algo = "waypoint"

    def _restore(self, payload: dict[str, Any], seed: int) -> None:
        config = WaypointConfig(**payload["config"])
        self.controller = WaypointController(str(payload["env_id"]), config)
        self.noise = 0.0 if self.deterministic else float(payload["noise"])
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: Any) -> np.ndarray:
        return noisy_action(self.controller(obs), self.noise, self.rng)


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
    observation: ObservationLayout | None = None,
) -> dict[str, Any]:
    """What collection needs of a behaviour policy (its actor, not the optimiser state)."""
    return _keys(observation) | {
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


def dqn_checkpoint(
    agent: DQN,
    obs_dim: int,
    num_actions: int,
    action_start: int,
    step: int,
    env_id: str,
    observation: ObservationLayout | None = None,
) -> dict[str, Any]:
    """What collection needs of a DQN behaviour policy (its Q-network, a copy of this step's)."""
    return _keys(observation) | {
        "algo": "dqn",
        "env_id": env_id,
        "step": step,
        "obs_dim": obs_dim,
        "num_actions": num_actions,
        "action_start": action_start,
        "config": agent.config.model_dump(),
        "q": {k: v.detach().clone() for k, v in agent.q.state_dict().items()},
        "eval_returns": [],
        "eval_return_mean": float("nan"),
    }


def waypoint_checkpoint(
    env_id: str,
    config: WaypointConfig,
    noise: float,
    step: int,
    observation: ObservationLayout,
) -> dict[str, Any]:
    """All a waypoint behaviour policy is: the env (its maze), the gains and this step's noise."""
    return _keys(observation) | {
        "algo": "waypoint",
        "env_id": env_id,
        "step": step,
        "obs_dim": observation.obs_dim,
        "config": config.model_dump(),
        "noise": noise,
        "eval_returns": [],
        "eval_return_mean": float("nan"),
    }


def _keys(observation: ObservationLayout | None) -> dict[str, Any]:
    """A Dict observation's key order (and an image's shape), which a checkpoint's policy flattens
    by; nothing for a vector Box (so such a checkpoint's file is as it always was)."""
    keep = observation is not None and (observation.keys or observation.image)
    return {"observation_keys": observation.to_json()} if observation and keep else {}
