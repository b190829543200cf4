"""Policy rollouts in the real environment: returns, D4RL-style normalised scores, the env's
success rate where it reports one, videos."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch

from core.atomic import atomic_path
from core.envs import make_env, make_vec_env
from transitions.metadata import TransitionsMeta

log = logging.getLogger(__name__)

PolicyFn = Callable[[Any], np.ndarray]
SUCCESS_KEYS = ("success", "is_success")  # where envs report success in `info`, in this order


@runtime_checkable
class Episodic(Protocol):
    """A policy that carries history across an episode's steps (a sequence model's window):
    told when episodes start and, after every step, its rewards and which episodes ended."""

    def start(self, envs: int) -> None: ...

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None: ...


class AgentPolicy:
    """Wraps an algorithm for the env: flattens Dict observations into the file's vector
    (`meta.observations`), normalises them like its training data and turns the algorithm's
    actions into the env's: Box actions in [-1, 1] mapped back to the env's bounds, Discrete
    indices shifted by the space's start (int64). Batched over the algorithm's S seeds too:
    obs (S * n, obs_dim), seed-major (seed k's environments are rows k*n..k*n+n-1), goes to the
    algorithm as (S, n, obs_dim); actions come back as (S * n, act_dim), or (S * n,) indices.
    An `act` that is `Episodic` (offline_rl/context.py) is told of episode starts and rewards."""

    def __init__(
        self,
        act: Callable[[torch.Tensor], torch.Tensor],
        meta: TransitionsMeta,
        device: torch.device,
        seeds: int = 1,
    ) -> None:
        self.act = act
        self.device = device
        self.seeds = seeds
        self.layout = meta.observations
        self.mean = np.asarray(meta.obs_mean, dtype=np.float32)
        self.std = np.asarray(meta.obs_std, dtype=np.float32)
        self.normalize = meta.normalize_observations
        self.discrete = meta.discrete_actions
        self.action_start = meta.action_start
        self.low = np.asarray(meta.action_low, dtype=np.float32)
        self.high = np.asarray(meta.action_high, dtype=np.float32)

    @classmethod
    def of(
        cls, algo: Any, meta: TransitionsMeta, device: torch.device, seeds: int = 1
    ) -> AgentPolicy:
        """The algorithm's deterministic policy; a sequence model (one with `context_actor`) acts
        from its history through the ContextActor it makes for this data."""
        make_context = getattr(algo, "context_actor", None)
        if make_context is not None:
            return cls(make_context(meta, device), meta, device, seeds)
        return cls(lambda obs: algo.act(obs, deterministic=True), meta, device, seeds)

    def start(self, envs: int) -> None:
        if isinstance(self.act, Episodic):
            self.act.start(envs)

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        if isinstance(self.act, Episodic):
            self.act.observe(rewards, dones)

    def __call__(self, obs: Any) -> np.ndarray:
        obs = self.layout.flatten(obs)
        if self.normalize:
            obs = (obs - self.mean) / self.std
        obs_t = torch.as_tensor(obs, device=self.device)
        with torch.no_grad():
            action = self.act(obs_t.view(self.seeds, -1, obs_t.shape[-1])).flatten(0, 1)
        if self.discrete:
            return action.cpu().numpy().astype(np.int64) + self.action_start
        unit = action.float().cpu().numpy()
        return np.asarray(self.low + (unit + 1.0) * 0.5 * (self.high - self.low))


@dataclass(frozen=True)
class EvalResult:
    returns: tuple[float, ...]
    lengths: tuple[int, ...]
    ref_min_score: float | None
    ref_max_score: float | None
    # 1.0 / 0.0 per episode where the env reports success at every episode's end; else None
    successes: tuple[float, ...] | None = None

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns))

    def normalized_scores(self) -> np.ndarray | None:
        """100 * (R - random) / (expert - random), as D4RL and CORL report it."""
        if self.ref_min_score is None or self.ref_max_score is None:
            return None
        span = self.ref_max_score - self.ref_min_score
        return 100.0 * (np.asarray(self.returns) - self.ref_min_score) / span

    def to_metrics(self, prefix: str = "eval") -> dict[str, float]:
        metrics = {
            f"{prefix}/return_mean": self.mean_return,
            f"{prefix}/return_std": self.std_return,
            f"{prefix}/episode_length_mean": float(np.mean(self.lengths)),
        }
        scores = self.normalized_scores()
        if scores is not None:
            metrics[f"{prefix}/normalized_score_mean"] = float(scores.mean())
            metrics[f"{prefix}/normalized_score_std"] = float(scores.std())
        if self.successes is not None:
            metrics[f"{prefix}/success_rate"] = float(np.mean(self.successes))
        return metrics


@dataclass(frozen=True)
class Rollouts:
    """Episodes' returns and lengths, and their successes where the env reports them (else None),
    copy-major like `rollout_returns`."""

    returns: list[float]
    lengths: list[int]
    successes: list[float] | None


def episode_success(infos: dict[str, Any], index: int) -> float | None:
    """Whether the vector env's sub-env `index` reports success in the info of the step that
    ended its episode (`info["success"]` or `info["is_success"]`); None where it reports neither."""
    for key in SUCCESS_KEYS:
        if key in infos and bool(np.asarray(infos.get(f"_{key}", True)).reshape(-1)[index]):
            return float(bool(np.asarray(infos[key]).reshape(-1)[index]))
    return None


def rollouts(
    env_id: str,
    policy: PolicyFn,
    episodes: int,
    seed: int,
    num_envs: int | None = None,
    copies: int = 1,
) -> Rollouts:
    """Run `episodes` episodes (env seeds seed, seed+1, ...) with batched policy calls.

    With `copies` (the seeds of a multi-seed policy), every copy runs the same episodes side by
    side in one vector environment, seed-major as AgentPolicy expects, and the results come back
    copy by copy: copy k's episode i is entry k * episodes + i."""
    num_envs = min(episodes, num_envs or episodes)
    returns: list[list[float]] = [[] for _ in range(copies)]
    lengths: list[list[int]] = [[] for _ in range(copies)]
    successes: list[list[float | None]] = [[] for _ in range(copies)]
    next_seed = seed
    while len(returns[0]) < episodes:
        n = min(num_envs, episodes - len(returns[0]))
        envs = make_vec_env(env_id, num_envs=n * copies, vectorization_mode="sync")
        try:
            seeds = [next_seed + i for i in range(n)] * copies
            obs, _ = envs.reset(seed=seeds)  # type: ignore[arg-type]
            if isinstance(policy, Episodic):
                policy.start(n * copies)
            next_seed += n
            totals = np.zeros(n * copies)
            steps = np.zeros(n * copies, dtype=np.int64)
            active = np.ones(n * copies, dtype=bool)
            success: list[float | None] = [None] * (n * copies)
            while active.any():
                obs, reward, terminated, truncated, infos = envs.step(policy(obs))
                if isinstance(policy, Episodic):
                    policy.observe(reward, terminated | truncated)
                totals += reward * active
                steps += active
                # The info of the step that ends an episode is its last (autoreset comes next step)
                for index in np.flatnonzero(active & (terminated | truncated)):
                    success[index] = episode_success(infos, int(index))
                active &= ~(terminated | truncated)
        finally:
            envs.close()
        for copy in range(copies):
            part = slice(copy * n, (copy + 1) * n)
            returns[copy].extend(float(x) for x in totals[part])
            lengths[copy].extend(int(x) for x in steps[part])
            successes[copy].extend(success[part])
    flat_successes = [s for part in successes for s in part]
    reported = all(s is not None for s in flat_successes)
    return Rollouts(
        [r for part in returns for r in part],
        [n for part in lengths for n in part],
        [float(s) for s in flat_successes if s is not None] if reported else None,
    )


def rollout_returns(
    env_id: str,
    policy: PolicyFn,
    episodes: int,
    seed: int,
    num_envs: int | None = None,
    copies: int = 1,
) -> tuple[list[float], list[int]]:
    """The returns and lengths of `rollouts`."""
    result = rollouts(env_id, policy, episodes, seed, num_envs, copies)
    return result.returns, result.lengths


def evaluate_policy(
    env_id: str,
    policy: PolicyFn,
    episodes: int,
    seed: int,
    ref_min_score: float | None,
    ref_max_score: float | None,
    seeds: int = 1,
) -> list[EvalResult]:
    """Each of the policy's `seeds` copies over the same `episodes` episodes, in one vector
    environment: one result per seed, with the env's success rate where it reports success."""
    result = rollouts(env_id, policy, episodes, seed, copies=seeds)
    part = [slice(k * episodes, (k + 1) * episodes) for k in range(seeds)]
    return [
        EvalResult(
            tuple(result.returns[p]),
            tuple(result.lengths[p]),
            ref_min_score,
            ref_max_score,
            None if result.successes is None else tuple(result.successes[p]),
        )
        for p in part
    ]


def batch_of_one(obs: Any) -> Any:
    """One env's observation as a batch of one (a Dict observation key by key)."""
    if isinstance(obs, Mapping):
        return {key: np.asarray(value)[None] for key, value in obs.items()}
    return np.asarray(obs)[None]


# Families whose `width`/`height` are the grid's size, not the frame's (MiniGrid would assert, or
# build a 320-cell grid): they render at their own frame size.
GRID_SIZED = ("MiniGrid-", "BabyAI-")


def rendering_env(env_id: str) -> gym.Env[Any, Any]:
    """`env_id` rendering 320x240 frames; envs without a frame size (classic control: CartPole;
    MiniGrid) render at their own."""
    if env_id.startswith(GRID_SIZED):
        return make_env(env_id, render_mode="rgb_array")
    try:
        return make_env(env_id, render_mode="rgb_array", width=320, height=240)
    except TypeError:
        return make_env(env_id, render_mode="rgb_array")


def record_video(
    env_id: str, policy: PolicyFn, path: str | Path, seed: int, max_steps: int = 1000, fps: int = 30
) -> Path | None:
    """Render one episode offscreen to an mp4; returns None (and says why) where no renderer works."""
    import imageio.v2 as imageio

    try:
        env = rendering_env(env_id)
    except Exception as error:  # no GL backend, missing assets: the run goes on without video
        log.warning(
            "video skipped: cannot create a rendering %s (%s); set MUJOCO_GL=egl or osmesa",
            env_id,
            error,
        )
        return None
    try:
        obs, _ = env.reset(seed=seed)
        if isinstance(policy, Episodic):
            policy.start(1)
        frames = [env.render()]
        for _ in range(max_steps):
            obs, reward, terminated, truncated, _ = env.step(policy(batch_of_one(obs))[0])
            if isinstance(policy, Episodic):
                policy.observe(np.array([reward]), np.array([terminated or truncated]))
            frames.append(env.render())
            if terminated or truncated:
                break
    except Exception as error:
        log.warning(
            "video skipped: rendering %s failed (%s); set MUJOCO_GL=egl or osmesa", env_id, error
        )
        return None
    finally:
        env.close()
    path = Path(path)
    with atomic_path(path, suffix=".mp4") as tmp:
        imageio.mimwrite(tmp, [np.asarray(f) for f in frames], fps=fps, format="mp4")  # type: ignore[arg-type]
    return path
