"""Online training of a behaviour policy (SAC for Box actions, Double DQN for Discrete): checkpoints at chosen steps with evaluated returns,
and the whole replay buffer kept (in order, with episode boundaries) for the replay datasets.

`train_behavior` reads top to bottom: take up a resume state (`core.resume`), train (`_Learning`:
one environment step, the episode's end, one gradient step, a checkpoint, a resume state), then
write every output at once (`_write_outputs`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from tqdm import tqdm

from core.atomic import atomic_dir, remove_stale_siblings, write_json
from core.checkpoint import save_checkpoint, seed_everything
from core.resume import load_resume_state, save_resume_state
from datagen.behavior.config import BehaviorConfig
from datagen.behavior.run import (
    RESUME_KIND,
    BehaviorResult,
    BehaviorRun,
    behavior_fingerprint,
)
from datagen.behavior.sac import SAC
from datagen.behavior.spaces import env_layouts
from offline_rl.buffer import ReplayBuffer
from offline_rl.side_thread import one_intra_op_thread
from offline_rl.speed import denormals_flushed
from offline_rl.tracking import RunLogger
from transitions.spaces import ObservationLayout

log = logging.getLogger(__name__)

SaveState = Callable[[bool], None]  # save the resume state (finished or not)


def train_behavior(
    env_id: str,
    config: BehaviorConfig,
    seed: int,
    out_dir: Path,
    logger_factory: Callable[[str | None], RunLogger],
    progress: bool = True,
    resume_path: Path | None = None,
) -> tuple[BehaviorResult, RunLogger]:
    """Train SAC or DQN (by the action space) on `env_id`; write `step_<n>.pt`, `checkpoints.json` and `replay.h5` to `out_dir`
    (all at once, atomically: a killed run leaves the previous folder or none).

    With `resume_path`, the whole learner state is saved there at the first episode end after
    every `resume_every` steps, and a rerun of the same configuration continues from it. Episode
    ends are the only points where the env's state is just its reset seed, so a resumed run is
    bit-for-bit the uninterrupted one (on the same device and library versions). Returns the result
    and the open logger (its wandb run continues across a resume).
    """
    action, _ = env_layouts(env_id)  # an unsupported space fails before any work
    remove_stale_siblings(out_dir)
    if resume_path is not None:
        remove_stale_siblings(resume_path)
    run_fingerprint = behavior_fingerprint(env_id, config, seed, action.discrete)
    state = load_resume_state(resume_path, run_fingerprint, {"kind": RESUME_KIND})
    # The logger first: wandb may draw from the global RNGs, which are seeded only after it.
    logger = logger_factory(None if state is None else state["wandb_run_id"])
    logger.restore({} if state is None else state["history"], 0 if state is None else state["step"])
    seed_everything(seed)
    run = BehaviorRun(env_id, config, seed)
    if state is not None:
        run.restore(state)
        log.info("resuming behaviour %s from step %d (%s)", run.algo, run.step, resume_path)

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
            side_thread = isinstance(run.agent, SAC) and run.agent.side.active
            with denormals_flushed(config.flush_denormals), one_intra_op_thread(side_thread):
                _Learning(run, tmp, logger, save_state).learn(progress)
        run.env.close()
        run.result.steps = run.step
        # Last partial episode: cut by the budget, so it is a truncation, never a terminal.
        if run.buffer.dones[run.step - 1] == 0:
            run.truncations[run.step - 1] = True
        save_state(True)  # a rerun rewrites the outputs without training
        _write_outputs(tmp, run)
    return run.result, logger


class _Learning:
    """Environment steps from `run.step` to the budget or to the target return: act and store,
    then from `random_steps` on one gradient step each; at the episode ends and the checkpoint
    steps, logging, evaluation and resume states."""

    def __init__(
        self, run: BehaviorRun, tmp: Path, logger: RunLogger, save_state: SaveState
    ) -> None:
        self.run, self.tmp, self.logger, self.save_state = run, tmp, logger, save_state
        self.config = run.config
        self.update = run.update_fn()
        self.start_step = self.last_saved = run.step
        self.episode_return, self.episode_len = 0.0, 0
        self.started = time.perf_counter()
        self.timer = {"env": 0.0, "update": 0.0}  # acting + env.step vs gradient steps, per window

    def learn(self, progress: bool) -> None:
        run, config = self.run, self.config
        obs = self.reset()
        bar = tqdm(
            total=config.steps,
            initial=run.step,
            desc=f"behavior {run.algo} {run.env_id}",
            disable=not progress,
            mininterval=2.0,
        )
        while run.step < config.steps:
            obs, episode_ended = self.env_step(obs)
            bar.update()
            step = run.step
            if episode_ended:
                self.log_episode(step)
                run.episode_index += 1
                obs = self.reset()
            if step > config.random_steps:
                self.gradient_step(step)
            if step in config.checkpoint_steps and self.checkpoint(step):
                break  # the target return is reached
            due = episode_ended and step - self.last_saved >= config.resume_every
            if due and step < config.steps:  # the last one is saved finished, after the loop
                self.save_state(False)
                self.last_saved = step
        bar.close()

    def reset(self) -> Any:
        """Episode k resets with seed `seed + k`, so a resume at an episode end replays it."""
        obs, _ = self.run.env.reset(seed=self.run.seed + self.run.episode_index)
        return obs

    def env_step(self, obs: Any) -> tuple[Any, bool]:
        """Act, step the environment, store the transition: the next observation and whether the
        episode ended."""
        run, acting = self.run, time.perf_counter()
        unit = run.act(obs)
        next_obs, reward, terminated, truncated, _ = run.env.step(run.env_action(unit))
        run.record(obs, unit, reward, next_obs, terminated)
        self.timer["env"] += time.perf_counter() - acting
        run.truncations[run.step - 1] = truncated and not terminated
        self.episode_return += float(reward)
        self.episode_len += 1
        return next_obs, bool(terminated or truncated)

    def log_episode(self, step: int) -> None:
        self.logger.log(
            "train",
            step,
            {"episode_return": self.episode_return, "episode_length": float(self.episode_len)},
        )
        self.episode_return, self.episode_len = 0.0, 0

    def gradient_step(self, step: int) -> None:
        """One update; every `log_interval` steps its losses and where the time went."""
        updating, logged = time.perf_counter(), step % self.config.log_interval == 0
        metrics: dict[str, torch.Tensor] = self.update(logged)
        self.timer["update"] += time.perf_counter() - updating
        if logged:
            timer, window = self.timer, sum(self.timer.values())
            rates = {
                "env_steps_per_s": (step - self.start_step) / (time.perf_counter() - self.started),
                "perf/env_s": timer["env"],
                "perf/update_s": timer["update"],
                "perf/update_fraction": timer["update"] / max(window, 1e-9),
            }
            self.logger.log("losses", step, {k: float(v) for k, v in metrics.items()} | rates)
            self.timer = {"env": 0.0, "update": 0.0}

    def checkpoint(self, step: int) -> bool:
        """Save and evaluate the policy; whether its return reaches `target_return`."""
        returns = self.run.evaluate_checkpoint(self.tmp / f"step_{step}.pt")
        mean = float(np.mean(returns))
        self.logger.log(
            "eval", step, {"eval/return_mean": mean, "eval/return_std": float(np.std(returns))}
        )
        log.info("behavior step %d: eval return %.1f", step, mean)
        target = self.config.target_return
        reached = target is not None and mean >= target
        if reached:
            log.info("target return %.1f reached at step %d", target, step)
        return reached


def _write_outputs(tmp: Path, run: BehaviorRun) -> None:
    """The replay buffer and the checkpoint index beside the saved policies."""
    write_replay(
        tmp / "replay.h5",
        run.buffer,
        run.truncations,
        run.env_id,
        ReplayLayout(run.discrete, run.action.start, run.observation),
    )
    write_json(
        tmp / "checkpoints.json",
        {
            "env_id": run.env_id,
            "algo": run.algo,
            "seed": run.seed,
            "steps": run.step,
            "checkpoints": {f"step_{s}": r for s, r in sorted(run.result.checkpoints.items())},
        },
    )


@dataclass(frozen=True)
class ReplayLayout:
    """How the buffer's flat rows become the replay file's arrays."""

    discrete: bool = False  # actions: the env's own int64 (N,), else float32 (N, k) in [-1, 1]
    action_start: int = 0  # Discrete: the buffer holds indices, the file action = index + start
    observations: ObservationLayout | None = None  # None: a vector Box, stored as it is


def write_replay(
    path: Path,
    buffer: ReplayBuffer,
    truncations: np.ndarray,
    env_id: str,
    layout: ReplayLayout = ReplayLayout(),
) -> None:
    """The replay buffer in insertion order. Box actions in [-1, 1] units of the action space,
    Discrete ones as the env's int64 actions; a Dict observation as a group of arrays, one per key
    (`observations/<key>`), as Minari stores it; images as uint8 (N, H, W, C)."""
    with h5py.File(path, "w") as f:
        f.attrs["env_id"] = env_id
        n = buffer.size
        actions = buffer.actions[:n].cpu().numpy()
        if layout.discrete:
            actions = actions.astype(np.int64) + layout.action_start
        for key, rows in (  # the order the Box file always had
            ("observations", buffer.observations[:n].cpu().numpy()),
            ("actions", actions),
            ("rewards", buffer.rewards[:n].cpu().numpy()),
            ("next_observations", buffer.next_observations[:n].cpu().numpy()),
        ):
            stored = (
                rows
                if layout.observations is None or "observations" not in key
                else (layout.observations.stored(rows))
            )
            if not isinstance(stored, dict):
                f.create_dataset(key, data=stored, chunks=True)
                continue
            group = f.create_group(key)
            for name, array in stored.items():
                group.create_dataset(name, data=array, chunks=True)
        f.create_dataset("terminals", data=buffer.dones[:n].cpu().numpy() > 0.5)
        f.create_dataset("timeouts", data=truncations[:n])
