"""Online SAC training of a behaviour policy: checkpoints at chosen steps with evaluated returns,
and the whole replay buffer kept (in order, with episode boundaries) for the replay datasets."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import numpy as np
import torch
from pydantic import Field, model_validator
from tqdm import tqdm

from datagen.policies import SACPolicy, actor_checkpoint
from datagen.sac import SAC, SACConfig
from offline_rl.atomic import atomic_dir, remove_stale_siblings, write_json
from offline_rl.buffer import ReplayBuffer
from offline_rl.checkpoint import (
    CheckpointError,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from offline_rl.config import Device, StrictModel
from offline_rl.evaluation import rollout_returns
from offline_rl.tracking import RunLogger
from offline_rl.trainer import fingerprint, resolve_device

log = logging.getLogger(__name__)


class BehaviorConfig(StrictModel):
    steps: int = Field(default=40_000, ge=1)
    random_steps: int = Field(default=5_000, ge=0)
    batch_size: int = Field(default=256, ge=1)
    checkpoint_steps: tuple[int, ...] = (10_000, 20_000, 40_000)
    eval_episodes: int = Field(default=5, ge=1)
    log_interval: int = Field(default=1_000, ge=1)
    # env steps between resume states (saved at the next episode end; see train_behavior)
    resume_every: int = Field(default=5_000, ge=1)
    device: Device = "cpu"
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


def to_unit(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:
    return np.asarray(2.0 * (action - space.low) / (space.high - space.low) - 1.0, dtype=np.float32)


def behavior_fingerprint(env_id: str, config: BehaviorConfig, seed: int) -> str:
    """What defines the run; `resume_every` only decides how often state is saved."""
    return fingerprint(
        {"env_id": env_id, "seed": seed, "config": config.model_dump(exclude={"resume_every"})}
    )


def load_resume_state(path: Path | None, run_fingerprint: str) -> dict[str, Any] | None:
    """The saved state at `path` if it belongs to this exact run, else None (start afresh)."""
    if path is None or not path.exists():
        return None
    try:
        state = load_checkpoint(path, expect={"kind": "behavior_resume"})
    except CheckpointError as error:
        log.warning("ignoring resume state: %s", error)
        return None
    if state.get("fingerprint") != run_fingerprint:
        log.info("%s belongs to another configuration; training from scratch", path)
        return None
    return state


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
    state = load_resume_state(resume_path, run_fingerprint)
    start_step = 0 if state is None else int(state["step"])
    # The logger first: wandb may draw from the global RNGs, which are seeded only after it.
    logger = logger_factory(None if state is None else state["wandb_run_id"])
    logger.restore({} if state is None else state["history"], start_step)
    seed_everything(seed)
    device = resolve_device(config.device)
    env = gym.make(env_id)
    space = env.action_space
    assert isinstance(space, gym.spaces.Box) and env.observation_space.shape is not None
    obs_dim, act_dim = env.observation_space.shape[0], space.shape[0]
    agent = SAC(obs_dim, act_dim, config.sac, device)
    buffer = ReplayBuffer(obs_dim, act_dim, config.steps, device, seed=seed)
    truncations = np.zeros(config.steps, dtype=bool)
    rng = np.random.default_rng(seed)
    result = BehaviorResult()
    policies: dict[int, dict[str, Any]] = {}
    wanted = set(config.checkpoint_steps)
    episode_index = 0
    if state is not None:
        episode_index = state["episode_index"]
        agent.load_state_dict(state["agent"])
        for name, tensor in state["buffer"].items():
            getattr(buffer, name)[:start_step] = tensor.to(device)
        buffer.size = start_step
        truncations[:start_step] = state["truncations"]
        rng.bit_generator.state = state["action_rng"]
        buffer.generator.set_state(state["sampler_rng"])
        set_rng_state(state["rng"])
        policies = state["policies"]
        result.checkpoints = dict(state["result"])
        log.info("resuming behaviour SAC from step %d (%s)", start_step, resume_path)

    def save_state(step: int, finished: bool) -> None:
        if resume_path is None:
            return
        save_checkpoint(
            resume_path,
            {
                "kind": "behavior_resume",
                "fingerprint": run_fingerprint,
                "finished": finished,
                "step": step,
                "episode_index": episode_index,
                "agent": agent.state_dict(),
                "buffer": {
                    name: getattr(buffer, name)[:step].cpu().clone()
                    for name in ("observations", "actions", "rewards", "next_observations", "dones")
                },
                "truncations": truncations[:step].copy(),
                "action_rng": rng.bit_generator.state,
                "sampler_rng": buffer.generator.get_state(),
                "rng": rng_state(),
                "policies": policies,
                "result": dict(result.checkpoints),
                "wandb_run_id": logger.run_id,
                "history": logger.history,
            },
        )

    episode_return, episode_len, last_saved = 0.0, 0, start_step
    obs, _ = env.reset(seed=seed + episode_index)  # episode k starts from reset seed `seed + k`
    started = time.perf_counter()
    timer = {"env": 0.0, "update": 0.0}  # acting + env.step vs gradient steps, per log window
    with atomic_dir(out_dir) as tmp:
        for step_done, payload in policies.items():
            save_checkpoint(tmp / f"step_{step_done}.pt", payload)
        for step in tqdm(
            range(start_step + 1, config.steps + 1),
            initial=start_step,
            total=config.steps,
            desc=f"behavior SAC {env_id}",
            disable=not progress,
            mininterval=2.0,
        ):
            acting = time.perf_counter()
            if step <= config.random_steps:
                unit = rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)
            else:
                with torch.no_grad():
                    obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device)
                    unit = agent.act(obs_t[None], deterministic=False)[0].cpu().numpy()
            action = space.low + (unit + 1.0) * 0.5 * (space.high - space.low)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            buffer.add(
                *(
                    torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)[None]
                    for x in (obs, unit, reward, next_obs, float(terminated))
                )
            )
            timer["env"] += time.perf_counter() - acting
            truncations[step - 1] = truncated and not terminated
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
                episode_index += 1
                obs, _ = env.reset(seed=seed + episode_index)
                episode_return, episode_len = 0.0, 0
            if step > config.random_steps:
                updating = time.perf_counter()
                metrics = agent.update(buffer.sample(config.batch_size))
                timer["update"] += time.perf_counter() - updating
                if step % config.log_interval == 0:
                    window = sum(timer.values())
                    logger.log(
                        "losses",
                        step,
                        {k: float(v) for k, v in metrics.items()}
                        | {
                            "env_steps_per_s": (step - start_step)
                            / (time.perf_counter() - started),
                            "perf/env_s": timer["env"],
                            "perf/update_s": timer["update"],
                            "perf/update_fraction": timer["update"] / max(window, 1e-9),
                        },
                    )
                    timer = {"env": 0.0, "update": 0.0}
            if step in wanted:
                policies[step] = evaluated_policy(
                    agent,
                    (obs_dim, act_dim),
                    env_id,
                    space,
                    step,
                    tmp / f"step_{step}.pt",
                    config,
                    seed,
                )
                returns = policies[step]["eval_returns"]
                result.checkpoints[step] = float(np.mean(returns))
                logger.log(
                    "eval",
                    step,
                    {
                        "eval/return_mean": float(np.mean(returns)),
                        "eval/return_std": float(np.std(returns)),
                    },
                )
                log.info("behavior step %d: eval return %.1f", step, np.mean(returns))
            if episode_ended and step - last_saved >= config.resume_every and step < config.steps:
                save_state(step, finished=False)
                last_saved = step
        # Last partial episode: cut by the budget, so it is a truncation, never a terminal.
        if buffer.dones[config.steps - 1] == 0:
            truncations[config.steps - 1] = True
        save_state(config.steps, finished=True)  # a rerun rewrites the outputs without training
        write_replay(tmp / "replay.h5", buffer, truncations, env_id)
        write_json(
            tmp / "checkpoints.json",
            {
                "env_id": env_id,
                "seed": seed,
                "checkpoints": {f"step_{s}": r for s, r in sorted(result.checkpoints.items())},
            },
        )
    env.close()
    return result, logger


def evaluated_policy(
    agent: SAC,
    dims: tuple[int, int],
    env_id: str,
    space: gym.spaces.Box,
    step: int,
    path: Path,
    config: BehaviorConfig,
    seed: int,
) -> dict[str, Any]:
    """Save the actor at `path`, evaluate it, and save it again with its returns."""
    payload = actor_checkpoint(agent, *dims, space, step, [], env_id)
    # state_dict() aliases the live weights; the resume state keeps this step's, not later ones
    payload["actor"] = {k: v.detach().clone() for k, v in payload["actor"].items()}
    save_checkpoint(path, payload)
    returns, _ = rollout_returns(
        env_id, SACPolicy(path, deterministic=True), config.eval_episodes, seed=10_000 + seed
    )
    payload |= {"eval_returns": returns, "eval_return_mean": float(np.mean(returns))}
    save_checkpoint(path, payload)
    return payload


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
