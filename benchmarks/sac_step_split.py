"""Where an online SAC step's time goes, ours against the plain one, and how fast ours could be at
most: issue 28 asks 2x the plain SAC's environment steps/s.

Times, on one thread, each part of a learning-phase step apart: the update alone (ours in fp32 and
bf16, `datagen/behavior/sac.py`; the plain one of `benchmarks/plain_sac.py`, fed from NumPy as it
is in training), the update's own matrix products each timed alone (`benchmarks/matmul_bound.py`),
and the rest of a step (one action from the actor, one Hopper-v5 step, storing the transition).
The bound: if everything in our update but its matrix products cost nothing, a step would take
matmuls + rest, against the plain step's update + rest.

    python -m benchmarks.sac_step_split [--steps 300]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from benchmarks.common import RESULTS, machine, random_buffer
from benchmarks.matmul_bound import matmul_seconds_per_step
from benchmarks.plain_sac import PlainSAC
from core.atomic import write_json
from datagen.behavior.config import SACConfig
from datagen.behavior.sac import SAC
from offline_rl.buffer import ReplayBuffer
from offline_rl.speed import Precision, accelerate

ENV_ID, OBS, ACT, ROWS, BATCH = "Hopper-v5", 11, 3, 100_000, 256
CPU = torch.device("cpu")


def seconds_per_call(call: Callable[[], Any], calls: int, warmup: int = 30) -> float:
    for _ in range(warmup):
        call()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


def our_update(precision: Precision) -> tuple[SAC, Callable[[], Any]]:
    agent = SAC(OBS, ACT, SACConfig(), CPU)
    update = accelerate(agent, False, precision, CPU)
    buffer = random_buffer(ROWS, CPU, terminal_fraction=0.01)
    return agent, lambda: update(buffer.sample_filled(BATCH))


def plain_update() -> Callable[[], None]:
    agent, rng = PlainSAC(OBS, ACT), np.random.default_rng(0)
    obs = rng.standard_normal((ROWS, OBS), dtype=np.float32)
    act = rng.uniform(-1, 1, (ROWS, ACT)).astype(np.float32)
    rew, done = rng.standard_normal(ROWS, dtype=np.float32), np.zeros(ROWS, np.float32)

    def step() -> None:
        rows = rng.integers(0, ROWS, BATCH)
        agent.update(*(torch.as_tensor(a[rows]) for a in (obs, act, rew, obs, done)))

    return step


def rest_of_step(agent: SAC, calls: int) -> float:
    """One stochastic action, one env step, the transition stored: what both learners pay."""
    env, buffer = gym.make(ENV_ID), ReplayBuffer(OBS, ACT, calls + 100, CPU, seeds=[0])
    obs, _ = env.reset(seed=0)

    def step() -> None:
        nonlocal obs
        obs_t = torch.as_tensor(obs, dtype=torch.float32)
        action = agent.act(obs_t[None, None], deterministic=False)[0, 0].float().numpy()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        values = (obs, action, reward, next_obs, float(terminated))
        buffer.add(*(torch.as_tensor(np.asarray(v, np.float32))[None] for v in values))
        obs = env.reset()[0] if terminated or truncated else next_obs

    return seconds_per_call(step, calls, warmup=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300, help="timed calls of each part")
    parser.add_argument("--out", type=Path, default=RESULTS / "sac_step_split.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    plain_s = seconds_per_call(plain_update(), args.steps)
    rows: dict[str, dict[str, float]] = {}
    rest_s = 0.0
    for precision in ("fp32", "bf16"):
        agent, update = our_update(precision)
        update_s = seconds_per_call(update, args.steps)
        matmul_s = matmul_seconds_per_step(update, 20)
        rest_s = rest_of_step(agent, args.steps) if precision == "fp32" else rest_s
        rows[precision] = {
            "update_ms": 1e3 * update_s,
            "matmul_ms": 1e3 * matmul_s,
            "x_plain_now": (plain_s + rest_s) / (update_s + rest_s),
            "x_plain_bound": (plain_s + rest_s) / (matmul_s + rest_s),
        }
    print(f"plain update {1e3 * plain_s:.2f} ms, rest of a step {1e3 * rest_s:.2f} ms (one thread)")
    print(
        f"{'ours':6} {'update ms':>10} {'matmuls ms':>11} {'x plain now':>12} {'x plain bound':>14}"
    )
    for precision, row in rows.items():
        print(
            f"{precision:6} {row['update_ms']:10.2f} {row['matmul_ms']:11.2f}"
            f" {row['x_plain_now']:12.2f} {row['x_plain_bound']:14.2f}"
        )
    result = {"machine": machine(), "plain_update_ms": 1e3 * plain_s, "rest_ms": 1e3 * rest_s}
    write_json(args.out, result | {"ours": rows})


if __name__ == "__main__":
    main()
