"""Online SAC training of a behaviour policy: checkpoints at chosen steps with evaluated returns,
and the whole replay buffer kept (in order, with episode boundaries) for the replay datasets."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
import torch
from pydantic import Field, model_validator
from tqdm import tqdm

from datagen.policies import SACPolicy, actor_checkpoint
from datagen.sac import SAC, SACConfig
from offline_rl.atomic import atomic_dir, write_json
from offline_rl.buffer import ReplayBuffer
from offline_rl.checkpoint import save_checkpoint, seed_everything
from offline_rl.config import StrictModel
from offline_rl.evaluation import rollout_returns
from offline_rl.tracking import RunLogger

log = logging.getLogger(__name__)


class BehaviorConfig(StrictModel):
    steps: int = Field(default=40_000, ge=1)
    random_steps: int = Field(default=5_000, ge=0)
    batch_size: int = Field(default=256, ge=1)
    checkpoint_steps: tuple[int, ...] = (10_000, 20_000, 40_000)
    eval_episodes: int = Field(default=5, ge=1)
    log_interval: int = Field(default=1_000, ge=1)
    device: str = "cpu"
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


def train_behavior(
    env_id: str,
    config: BehaviorConfig,
    seed: int,
    out_dir: Path,
    logger: RunLogger,
    progress: bool = True,
) -> BehaviorResult:
    """Train SAC on `env_id`; write `step_<n>.pt`, `checkpoints.json` and `replay.h5` to `out_dir`
    (all at once, atomically: a killed run leaves the previous folder or none)."""
    seed_everything(seed)
    device = torch.device(config.device)
    env = gym.make(env_id)
    space = env.action_space
    assert isinstance(space, gym.spaces.Box) and env.observation_space.shape is not None
    obs_dim, act_dim = env.observation_space.shape[0], space.shape[0]
    agent = SAC(obs_dim, act_dim, config.sac, device)
    buffer = ReplayBuffer(obs_dim, act_dim, config.steps, device, seed=seed)
    truncations = np.zeros(config.steps, dtype=bool)
    rng = np.random.default_rng(seed)
    result = BehaviorResult()
    wanted = set(config.checkpoint_steps)
    episode_return, episode_len, episode_index = 0.0, 0, 0
    obs, _ = env.reset(seed=seed)
    started = time.perf_counter()
    timer = {"env": 0.0, "update": 0.0}  # acting + env.step vs gradient steps, per log window
    with atomic_dir(out_dir) as tmp:
        for step in tqdm(
            range(1, config.steps + 1),
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
            if terminated or truncated:
                logger.log(
                    "train",
                    step,
                    {"episode_return": episode_return, "episode_length": float(episode_len)},
                )
                obs, _ = env.reset(seed=seed + 1 + episode_index)
                episode_index += 1
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
                            "env_steps_per_s": step / (time.perf_counter() - started),
                            "perf/env_s": timer["env"],
                            "perf/update_s": timer["update"],
                            "perf/update_fraction": timer["update"] / max(window, 1e-9),
                        },
                    )
                    timer = {"env": 0.0, "update": 0.0}
            if step in wanted:
                payload = actor_checkpoint(agent, obs_dim, act_dim, space, step, [], env_id)
                policy_path = tmp / f"step_{step}.pt"
                save_checkpoint(policy_path, payload)
                returns, _ = rollout_returns(
                    env_id,
                    SACPolicy(policy_path, deterministic=True),
                    config.eval_episodes,
                    seed=10_000 + seed,
                )
                payload |= {"eval_returns": returns, "eval_return_mean": float(np.mean(returns))}
                save_checkpoint(policy_path, payload)
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
        # Last partial episode: cut by the budget, so it is a truncation, never a terminal.
        if buffer.dones[config.steps - 1] == 0:
            truncations[config.steps - 1] = True
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
    return result


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
