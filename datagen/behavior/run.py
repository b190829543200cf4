"""The behaviour learner and what a resume restores of it: SAC (Box actions) or Double DQN
(Discrete actions), chosen by the env's action space, or the scripted maze controller
(`learner: waypoint`, datagen/behavior/waypoint.py); its replay buffer with the truncation flags,
the exploration RNG, the episode counter and the checkpoints taken so far.

A Dict observation is learned from as the flat vector of all its keys
(`transitions.spaces.ObservationLayout`); the replay file splits it back into its keys. An image
is learned from by the DQN's CNN encoder; the buffer and the replay file keep its bytes uint8."""

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
from core.envs import make_env
from core.resume import fingerprint, switches_off
from datagen.behavior.config import BehaviorConfig
from datagen.behavior.dqn import DQN
from datagen.behavior.policies import (
    actor_checkpoint,
    dqn_checkpoint,
    load_policy,
    waypoint_checkpoint,
)
from datagen.behavior.sac import SAC
from datagen.behavior.spaces import env_layouts
from datagen.behavior.waypoint import WaypointController, noise_at, noisy_action
from offline_rl.buffer import ReplayBuffer
from offline_rl.cuda_graph import GraphedTrainStep
from offline_rl.evaluation import rollout_returns
from offline_rl.speed import accelerate
from transitions.spaces import SpaceError

# Bumped when the learner's saved state changes shape, so older resume states are not loaded.
RESUME_FORMAT = 3
RESUME_KIND = "behavior_resume"


@dataclass
class BehaviorResult:
    checkpoints: dict[int, float] = field(default_factory=dict)  # step -> mean eval return
    steps: int = 0  # environment steps taken (fewer than configured when target_return stopped it)


def behavior_fingerprint(
    env_id: str, config: BehaviorConfig, seed: int, discrete: bool = False
) -> str:
    """What defines the run; `resume_every` only decides how often state is saved, and the
    learners the run does not use (`dqn` for Box actions, `sac` for Discrete, both for the
    waypoint controller, which only an `auto` run leaves out) not at all."""
    if config.learner == "waypoint":
        unused = {"sac", "dqn"}
    else:  # `learner` and `waypoint` left out too: an auto run's fingerprint predates them
        unused = {"sac" if discrete else "dqn", "learner", "waypoint"}
    unused |= switches_off(config, ("flush_denormals", "critic_thread"))
    return fingerprint(
        {
            "env_id": env_id,
            "seed": seed,
            "format": RESUME_FORMAT,
            "config": config.model_dump(exclude={"resume_every", *unused}),
        }
    )


class BehaviorRun:
    """The learner and everything a resume restores: SAC or DQN, the replay buffer with its
    truncation flags, the exploration RNG, the episode counter and the checkpoints taken so far."""

    BUFFER_FIELDS = ("observations", "actions", "rewards", "next_observations", "dones")

    def __init__(self, env_id: str, config: BehaviorConfig, seed: int) -> None:
        self.env_id, self.config, self.seed = env_id, config, seed
        self.device = resolve_device(config.device)
        self.env = make_env(env_id)
        self.action, self.observation = env_layouts(env_id)
        self.discrete = self.action.discrete
        self.scripted = config.learner == "waypoint"
        self.algo = "waypoint" if self.scripted else "DQN" if self.discrete else "SAC"
        self.space = self.env.action_space
        self.dims = (self.observation.obs_dim, self.action.act_dim)
        self.agent: SAC | DQN | None
        self.controller: WaypointController | None = None
        if self.scripted:
            if self.discrete:
                raise SpaceError(
                    f"{env_id}: behavior.learner waypoint steers with Box actions; "
                    f"this env's are {self.action.num_actions} Discrete ones"
                )
            self.controller = WaypointController(env_id, config.waypoint)
            self.agent = None
            self.buffer = ReplayBuffer(*self.dims, config.steps, self.device, seeds=[seed])
        elif self.discrete:
            self.agent = DQN(self.observation, self.dims[1], config.dqn, self.device, seed=seed)
            self.buffer = ReplayBuffer(
                *self.dims,
                config.steps,
                self.device,
                seeds=[seed],
                action_shape=(),
                images=self.observation.image is not None,
            )
        else:
            if self.observation.image:
                raise SpaceError(
                    f"{env_id}: image observations {self.observation.image} with Box actions: "
                    "the behaviour SAC has no image encoder (the DQN, for Discrete actions, has)"
                )
            self.agent = SAC(
                *self.dims, config.sac, self.device, seed=seed, side_thread=config.critic_thread
            )
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
        if self.agent is not None:
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
            "agent": {} if self.agent is None else self.agent.state_dict(),
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

    def act(self, obs: Any) -> Any:
        """An exploring action as the buffer stores it. Box: in [-1, 1] units, uniform during the
        random warm-up, then SAC's. Discrete: the action's index, uniform during the warm-up, then
        epsilon-greedy on the linear schedule (behavior.dqn). Waypoint: the controller with this
        step's noise (behavior.waypoint), after the same uniform warm-up."""
        if self.discrete:
            return self._act_discrete(obs)
        if self.step < self.config.random_steps:
            return self.rng.uniform(-1.0, 1.0, self.dims[1]).astype(np.float32)
        if self.controller is not None:
            noise = noise_at(self.config.waypoint, self.step, self.config.steps)
            return self._unit(noisy_action(self.controller(obs)[0], noise, self.rng))
        obs_t = torch.as_tensor(
            self.observation.flatten(obs), dtype=torch.float32, device=self.device
        )
        assert isinstance(self.agent, SAC)
        return self.agent.act(obs_t[None, None], deterministic=False)[0, 0].float().cpu().numpy()

    def _act_discrete(self, obs: Any) -> int:
        n, dqn = self.action.num_actions, self.config.dqn
        if self.step < self.config.random_steps:
            return int(self.rng.integers(n))
        progress = min(1.0, (self.step - self.config.random_steps) / dqn.epsilon_decay_steps)
        epsilon = dqn.initial_epsilon + progress * (dqn.final_epsilon - dqn.initial_epsilon)
        explore, uniform = self.rng.random() < epsilon, int(self.rng.integers(n))  # both drawn
        if explore:
            return uniform
        obs_t = torch.as_tensor(
            self.observation.flatten(obs), dtype=torch.float32, device=self.device
        )
        assert isinstance(self.agent, DQN)
        return int(self.agent.act(obs_t[None, None])[0, 0])

    def _unit(self, env_action: np.ndarray) -> np.ndarray:
        """An env action in the buffer's [-1, 1] units of the Box (env_action's inverse)."""
        assert isinstance(self.space, gym.spaces.Box)
        low, high = self.space.low, self.space.high
        return ((env_action - low) / (high - low) * 2.0 - 1.0).astype(np.float32)

    def env_action(self, stored: Any) -> Any:
        """The env's action for a stored one: Box units mapped to the bounds, an index + start."""
        if self.discrete:
            return int(stored) + self.action.start
        assert isinstance(self.space, gym.spaces.Box)
        return self.space.low + (stored + 1.0) * 0.5 * (self.space.high - self.space.low)

    def record(self, obs: Any, unit: Any, reward: Any, next_obs: Any, terminated: bool) -> None:
        flat = self.observation.flatten  # float32, or an image's uint8 bytes as the buffer keeps
        values = [
            flat(obs),
            np.asarray(unit, np.float32),
            np.asarray(reward, np.float32),
            flat(next_obs),
            np.asarray(terminated, np.float32),
        ]
        self.buffer.add(*(torch.as_tensor(v, device=self.device)[None] for v in values))
        self.step += 1

    def update_fn(self) -> Callable[[bool], dict[str, torch.Tensor]]:
        """One gradient step on a fresh batch, called with whether to take the diagnostics too
        (gradient norms, Q statistics: for the steps the loop logs); from a CUDA graph where
        asked and possible, which takes them always. The waypoint controller learns nothing: its
        step is empty."""
        if self.agent is None:
            return lambda diagnostics: {}
        update = accelerate(self.agent, False, self.config.precision, self.device)
        batch_size = self.config.batch_size
        # DQN's target refresh is a host-side count of steps: it runs eagerly.
        if self.config.cuda_graph and self.device.type == "cuda" and isinstance(self.agent, SAC):
            return GraphedTrainStep(
                self.agent,
                lambda: self.buffer.sample_filled(batch_size),
                update,
                [*self.buffer.generators, *self.agent.noise.generators],
            )
        return lambda diagnostics: update(
            self.buffer.sample_filled(batch_size), diagnostics=diagnostics
        )

    def evaluate_checkpoint(self, path: Path) -> list[float]:
        """Save the policy at `path`, evaluate it greedily, and save it again with its returns.
        A waypoint checkpoint is evaluated with its noise: noise-free, all would be the same."""
        save_checkpoint(path, payload := self.policy_payload())
        returns, _ = rollout_returns(
            self.env_id,
            load_policy(path, deterministic=not self.scripted, seed=10_000 + self.seed),
            self.config.eval_episodes,
            seed=10_000 + self.seed,
        )
        payload |= {"eval_returns": returns, "eval_return_mean": float(np.mean(returns))}
        save_checkpoint(path, payload)
        self.policies[self.step] = payload
        self.result.checkpoints[self.step] = float(np.mean(returns))
        return returns

    def policy_payload(self) -> dict[str, Any]:
        """The checkpoint of this step's policy (weights copied: the live ones keep training)."""
        if self.agent is None:
            noise = noise_at(self.config.waypoint, self.step, self.config.steps)
            return waypoint_checkpoint(
                self.env_id, self.config.waypoint, noise, self.step, self.observation
            )
        if isinstance(self.agent, DQN):
            return dqn_checkpoint(
                self.agent,
                self.dims[0],
                self.action.num_actions,
                self.action.start,
                self.step,
                self.env_id,
                self.observation,
            )
        assert isinstance(self.space, gym.spaces.Box)
        payload = actor_checkpoint(
            self.agent, *self.dims, self.space, self.step, [], self.env_id, self.observation
        )
        # state_dict() aliases the live weights; the resume state keeps this step's, not later ones
        payload["actor"] = {k: v.detach().clone() for k, v in payload["actor"].items()}
        return payload
