"""The behaviour learner and what a resume restores of it: SAC, its replay buffer with the
truncation flags, the exploration RNG, the episode counter and the checkpoints taken so far."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from core.checkpoint import rng_state, save_checkpoint, set_rng_state
from core.devices import resolve_device
from core.resume import fingerprint
from datagen.behavior.config import BehaviorConfig
from datagen.behavior.policies import SACPolicy, actor_checkpoint
from datagen.behavior.sac import SAC
from offline_rl.buffer import ReplayBuffer
from offline_rl.cuda_graph import GraphedTrainStep
from offline_rl.evaluation import rollout_returns
from offline_rl.speed import accelerate

# Bumped when the learner's saved state changes shape, so older resume states are not loaded.
RESUME_FORMAT = 3
RESUME_KIND = "behavior_resume"


@dataclass
class BehaviorResult:
    checkpoints: dict[int, float] = field(default_factory=dict)  # step -> mean eval return
    steps: int = 0  # environment steps taken (fewer than configured when target_return stopped it)


def behavior_fingerprint(env_id: str, config: BehaviorConfig, seed: int) -> str:
    """What defines the run; `resume_every` only decides how often state is saved."""
    return fingerprint(
        {
            "env_id": env_id,
            "seed": seed,
            "format": RESUME_FORMAT,
            "config": config.model_dump(exclude={"resume_every"}),
        }
    )


class BehaviorRun:
    """The learner and everything a resume restores: SAC, the replay buffer with its truncation
    flags, the exploration RNG, the episode counter and the checkpoints taken so far."""

    BUFFER_FIELDS = ("observations", "actions", "rewards", "next_observations", "dones")

    def __init__(self, env_id: str, config: BehaviorConfig, seed: int) -> None:
        self.env_id, self.config, self.seed = env_id, config, seed
        self.device = resolve_device(config.device)
        self.env = gym.make(env_id)
        space = self.env.action_space
        assert isinstance(space, gym.spaces.Box) and self.env.observation_space.shape is not None
        self.space = space
        self.dims = (self.env.observation_space.shape[0], space.shape[0])
        self.agent = SAC(*self.dims, config.sac, self.device, seed=seed)
        self.buffer = ReplayBuffer(*self.dims, config.steps, self.device, seeds=[seed])
        self.truncations = np.zeros(config.steps, dtype=bool)
        self.rng = np.random.default_rng(seed)
        self.step = 0
        self.episode_index = 0
        self.policies: dict[int, dict[str, Any]] = {}
        self.result = BehaviorResult()

    def restore(self, state: dict[str, Any]) -> None:
        self.step = self.buffer.size = int(state["step"])
        self.episode_index = state["episode_index"]
        self.agent.load_state_dict(state["agent"])
        for name, tensor in state["buffer"].items():
            getattr(self.buffer, name)[: self.step] = tensor.to(self.device)
        self.truncations[: self.step] = state["truncations"]
        self.rng.bit_generator.state = state["action_rng"]
        self.buffer.set_sampler_state(state["sampler_rng"])
        set_rng_state(state["rng"])
        self.policies = state["policies"]
        self.result.checkpoints = dict(state["result"])

    def state(self, finished: bool) -> dict[str, Any]:
        return {
            "kind": RESUME_KIND,
            "finished": finished,
            "step": self.step,
            "episode_index": self.episode_index,
            "agent": self.agent.state_dict(),
            "buffer": {
                name: getattr(self.buffer, name)[: self.step].cpu().clone()
                for name in self.BUFFER_FIELDS
            },
            "truncations": self.truncations[: self.step].copy(),
            "action_rng": self.rng.bit_generator.state,
            "sampler_rng": self.buffer.sampler_state(),
            "rng": rng_state(),
            "policies": self.policies,
            "result": dict(self.result.checkpoints),
        }

    def act(self, obs: np.ndarray) -> np.ndarray:
        """An exploring action in [-1, 1] units: uniform during the random warm-up, then SAC's."""
        if self.step < self.config.random_steps:
            return self.rng.uniform(-1.0, 1.0, self.dims[1]).astype(np.float32)
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        return self.agent.act(obs_t[None, None], deterministic=False)[0, 0].float().cpu().numpy()

    def record(self, obs: Any, unit: Any, reward: Any, next_obs: Any, terminated: bool) -> None:
        values = (obs, unit, reward, next_obs, float(terminated))
        self.buffer.add(
            *(torch.as_tensor(np.asarray(v, np.float32), device=self.device)[None] for v in values)
        )
        self.step += 1

    def update_fn(self) -> Callable[[], dict[str, torch.Tensor]]:
        """One gradient step on a fresh batch; from a CUDA graph where asked and possible."""
        update = accelerate(self.agent, False, self.config.precision, self.device)
        batch_size = self.config.batch_size
        if self.config.cuda_graph and self.device.type == "cuda":
            return GraphedTrainStep(
                self.agent,
                lambda: self.buffer.sample_filled(batch_size),
                update,
                [*self.buffer.generators, *self.agent.noise.generators],
            )
        return lambda: update(self.buffer.sample_filled(batch_size))

    def evaluate_checkpoint(self, path: Path) -> list[float]:
        """Save the actor at `path`, evaluate it, and save it again with its returns."""
        payload = actor_checkpoint(self.agent, *self.dims, self.space, self.step, [], self.env_id)
        # state_dict() aliases the live weights; the resume state keeps this step's, not later ones
        payload["actor"] = {k: v.detach().clone() for k, v in payload["actor"].items()}
        save_checkpoint(path, payload)
        returns, _ = rollout_returns(
            self.env_id,
            SACPolicy(path, deterministic=True),
            self.config.eval_episodes,
            seed=10_000 + self.seed,
        )
        payload |= {"eval_returns": returns, "eval_return_mean": float(np.mean(returns))}
        save_checkpoint(path, payload)
        self.policies[self.step] = payload
        self.result.checkpoints[self.step] = float(np.mean(returns))
        return returns
