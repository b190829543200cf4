"""Online SAC training of a behaviour policy: checkpoints at chosen steps with evaluated returns,
and the whole replay buffer kept (in order, with episode boundaries) for the replay datasets."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import h5py
import numpy as np
import torch
from pydantic import Field, model_validator
from tqdm import tqdm

from core.atomic import atomic_dir, remove_stale_siblings, write_json
from core.checkpoint import rng_state, save_checkpoint, seed_everything, set_rng_state
from core.config import StrictModel
from core.devices import Device, resolve_device
from core.resume import fingerprint, load_resume_state, save_resume_state
from datagen.policies import SACPolicy, actor_checkpoint
from datagen.sac import SAC, SACConfig
from offline_rl.buffer import ReplayBuffer
from offline_rl.cuda_graph import GraphedTrainStep
from offline_rl.evaluation import rollout_returns
from offline_rl.speed import accelerate
from offline_rl.tracking import RunLogger

log = logging.getLogger(__name__)

# Bumped when the learner's saved state changes shape, so older resume states are not loaded.
RESUME_FORMAT = 3
RESUME_KIND = "behavior_resume"


class BehaviorConfig(StrictModel):
    steps: int = Field(default=40_000, ge=1)
    random_steps: int = Field(default=5_000, ge=0)
    batch_size: int = Field(default=256, ge=1)
    checkpoint_steps: tuple[int, ...] = (10_000, 20_000, 40_000)
    # Stop at the first checkpoint whose evaluated return reaches this (null: run all `steps`).
    target_return: float | None = None
    eval_episodes: int = Field(default=5, ge=1)
    log_interval: int = Field(default=1_000, ge=1)
    # env steps between resume states (saved at the next episode end; see train_behavior)
    resume_every: int = Field(default=5_000, ge=1)
    device: Device = "cpu"
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast matmuls (offline_rl/speed.py)
    cuda_graph: bool = True  # on CUDA: replay each update from a CUDA graph (no effect on CPU)
    sac: SACConfig = SACConfig()

    @model_validator(mode="after")
    def _checkpoints_within_budget(self) -> BehaviorConfig:
        late = [s for s in self.checkpoint_steps if not 0 < s <= self.steps]
        if late:
            raise ValueError(f"checkpoint_steps {late} must lie in 1..steps ({self.steps})")
        return self


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


def train_behavior(
    env_id: str,
    config: BehaviorConfig,
    seed: int,
    out_dir: Path,
    logger_factory: Callable[[str | None], RunLogger],
    progress: bool = True,
    resume_path: Path | None = None,
) -> tuple[BehaviorResult, RunLogger]:
    """Train SAC on `env_id`; write `step_<n>.pt`, `checkpoints.json` and `replay.h5` to `out_dir`
    (all at once, atomically: a killed run leaves the previous folder or none).

    With `resume_path`, the whole learner state is saved there at the first episode end after
    every `resume_every` steps, and a rerun of the same configuration continues from it. Episode
    ends are the only points where the env's state is just its reset seed, so a resumed run is
    bit-for-bit the uninterrupted one (on the same device and library versions). Returns the result
    and the open logger (its wandb run continues across a resume).
    """
    remove_stale_siblings(out_dir)
    if resume_path is not None:
        remove_stale_siblings(resume_path)
    run_fingerprint = behavior_fingerprint(env_id, config, seed)
    state = load_resume_state(resume_path, run_fingerprint, {"kind": RESUME_KIND})
    # The logger first: wandb may draw from the global RNGs, which are seeded only after it.
    logger = logger_factory(None if state is None else state["wandb_run_id"])
    logger.restore({} if state is None else state["history"], 0 if state is None else state["step"])
    seed_everything(seed)
    run = BehaviorRun(env_id, config, seed)
    if state is not None:
        run.restore(state)
        log.info("resuming behaviour SAC from step %d (%s)", run.step, resume_path)

    def save_state(finished: bool) -> None:
        if resume_path is not None:
            payload = run.state(finished) | {
                "wandb_run_id": logger.run_id,
                "history": logger.history,
            }
            save_resume_state(resume_path, run_fingerprint, payload)

    with atomic_dir(out_dir) as tmp:
        for step_done, payload in run.policies.items():
            save_checkpoint(tmp / f"step_{step_done}.pt", payload)
        if state is None or not state["finished"]:
            _learn(run, tmp, logger, save_state, progress)
        run.env.close()
        run.result.steps = run.step
        # Last partial episode: cut by the budget, so it is a truncation, never a terminal.
        if run.buffer.dones[run.step - 1] == 0:
            run.truncations[run.step - 1] = True
        save_state(finished=True)  # a rerun rewrites the outputs without training
        write_replay(tmp / "replay.h5", run.buffer, run.truncations, env_id)
        write_json(
            tmp / "checkpoints.json",
            {
                "env_id": env_id,
                "seed": seed,
                "steps": run.step,
                "checkpoints": {f"step_{s}": r for s, r in sorted(run.result.checkpoints.items())},
            },
        )
    return run.result, logger


def _learn(
    run: BehaviorRun,
    tmp: Path,
    logger: RunLogger,
    save_state: Callable[[bool], None],
    progress: bool,
) -> None:
    """Environment steps from `run.step` to the budget or to the target return: act, store, and
    from `random_steps` on one gradient step each; checkpoints, logging and resume states."""
    config = run.config
    update = run.update_fn()
    wanted = set(config.checkpoint_steps)
    start_step, last_saved = run.step, run.step
    episode_return, episode_len = 0.0, 0
    obs, _ = run.env.reset(seed=run.seed + run.episode_index)  # episode k: reset seed `seed + k`
    started = time.perf_counter()
    timer = {"env": 0.0, "update": 0.0}  # acting + env.step vs gradient steps, per log window
    metrics: dict[str, torch.Tensor] = {}
    bar = tqdm(
        total=config.steps,
        initial=run.step,
        desc=f"behavior SAC {run.env_id}",
        disable=not progress,
        mininterval=2.0,
    )
    while run.step < config.steps:
        acting = time.perf_counter()
        unit = run.act(obs)
        action = run.space.low + (unit + 1.0) * 0.5 * (run.space.high - run.space.low)
        next_obs, reward, terminated, truncated, _ = run.env.step(action)
        run.record(obs, unit, reward, next_obs, terminated)
        step = run.step
        bar.update()
        timer["env"] += time.perf_counter() - acting
        run.truncations[step - 1] = truncated and not terminated
        episode_return += float(reward)
        episode_len += 1
        obs = next_obs
        episode_ended = bool(terminated or truncated)
        if episode_ended:
            logger.log(
                "train",
                step,
                {"episode_return": episode_return, "episode_length": float(episode_len)},
            )
            run.episode_index += 1
            obs, _ = run.env.reset(seed=run.seed + run.episode_index)
            episode_return, episode_len = 0.0, 0
        if step > config.random_steps:
            updating = time.perf_counter()
            metrics = update()
            timer["update"] += time.perf_counter() - updating
            if step % config.log_interval == 0:
                window = sum(timer.values())
                rates = {
                    "env_steps_per_s": (step - start_step) / (time.perf_counter() - started),
                    "perf/env_s": timer["env"],
                    "perf/update_s": timer["update"],
                    "perf/update_fraction": timer["update"] / max(window, 1e-9),
                }
                logger.log("losses", step, {k: float(v) for k, v in metrics.items()} | rates)
                timer = {"env": 0.0, "update": 0.0}
        reached = False
        if step in wanted:
            returns = run.evaluate_checkpoint(tmp / f"step_{step}.pt")
            mean = float(np.mean(returns))
            logger.log(
                "eval", step, {"eval/return_mean": mean, "eval/return_std": float(np.std(returns))}
            )
            log.info("behavior step %d: eval return %.1f", step, mean)
            reached = config.target_return is not None and mean >= config.target_return
            if reached:
                log.info("target return %.1f reached at step %d", config.target_return, step)
        if reached:
            break
        if episode_ended and step - last_saved >= config.resume_every and step < config.steps:
            save_state(False)
            last_saved = step
    bar.close()


def write_replay(path: Path, buffer: ReplayBuffer, truncations: np.ndarray, env_id: str) -> None:
    """The replay buffer in insertion order; actions in [-1, 1] units of the action space."""
    with h5py.File(path, "w") as f:
        f.attrs["env_id"] = env_id
        n = buffer.size
        for key, tensor in (
            ("observations", buffer.observations),
            ("actions", buffer.actions),
            ("rewards", buffer.rewards),
            ("next_observations", buffer.next_observations),
        ):
            f.create_dataset(key, data=tensor[:n].cpu().numpy(), chunks=True)
        f.create_dataset("terminals", data=buffer.dones[:n].cpu().numpy() > 0.5)
        f.create_dataset("timeouts", data=truncations[:n])
