"""Where an online SAC step's time goes, ours against the plain one, and how fast ours could be at
most: issue 28 asks 2x the plain SAC's environment steps/s.

Times, on one thread, each part of a learning-phase step apart: the update alone (ours in fp32 and
bf16, the behaviour stage's own `BehaviorRun.update_fn` on a full buffer; the plain one of
`benchmarks/plain_sac.py`, fed from NumPy as it is in training), the update's own matrix products
each timed alone (`benchmarks/matmul_bound.py`), and the rest of a step as the stage takes it
(`BehaviorRun.act`, one Hopper-v5 step, `BehaviorRun.record`). The update is timed as the stage
runs it on the steps it does not log; "logged ms" is the update with the gradient norms and Q
statistics the logging steps take.
The bound: if everything in our update but its matrix products cost nothing, a step would take
matmuls + rest, against the plain step's update + rest. The one-thread bound of a sequential
update: with `behavior.critic_thread` (rows "critic thread") the update takes the second core.

    python -m benchmarks.sac_step_split [--steps 300]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import RESULTS, machine, random_buffer
from benchmarks.matmul_bound import matmul_seconds_per_step
from benchmarks.plain_sac import PlainSAC
from core.atomic import write_json
from datagen.behavior.config import BehaviorConfig
from datagen.behavior.run import BehaviorRun
from offline_rl.speed import Precision

ENV_ID, OBS, ACT, ROWS = "Hopper-v5", 11, 3, 100_000
BATCH = BehaviorConfig().batch_size  # the stage's (256), which the plain SAC takes too
CPU = torch.device("cpu")


def seconds_per_call(call: Callable[[], Any], calls: int, warmup: int = 30) -> float:
    for _ in range(warmup):
        call()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


def behavior_run(precision: Precision, steps: int, critic_thread: bool = False) -> BehaviorRun:
    """The behaviour stage's learner for Hopper-v5 with a buffer of `steps` rows, acting from its
    first step (no random warm-up)."""
    config = BehaviorConfig(
        steps=steps,
        random_steps=0,
        checkpoint_steps=(steps,),
        precision=precision,
        critic_thread=critic_thread,
    )
    return BehaviorRun(ENV_ID, config, seed=0)


def our_update(
    precision: Precision, critic_thread: bool = False, diagnostics: bool = False
) -> Callable[[], Any]:
    """The stage's update on a full buffer of random rows, as it runs on the steps it does not
    log (no gradient norms or Q statistics) or, with `diagnostics`, on those it does."""
    run = behavior_run(precision, ROWS, critic_thread)
    rows = random_buffer(ROWS, CPU, terminal_fraction=0.01)
    run.buffer.add(*(getattr(rows, name) for name in BehaviorRun.BUFFER_FIELDS))
    update = run.update_fn()
    return lambda: update(diagnostics)


def plain_update() -> Callable[[], None]:
    agent, rng = PlainSAC(OBS, ACT), np.random.default_rng(0)
    obs = rng.standard_normal((ROWS, OBS), dtype=np.float32)
    act = rng.uniform(-1, 1, (ROWS, ACT)).astype(np.float32)
    rew, done = rng.standard_normal(ROWS, dtype=np.float32), np.zeros(ROWS, np.float32)

    def step() -> None:
        rows = rng.integers(0, ROWS, BATCH)
        agent.update(*(torch.as_tensor(a[rows]) for a in (obs, act, rew, obs, done)))

    return step


def rest_of_step(calls: int) -> float:
    """One stochastic action, one env step, the transition stored: what both learners pay."""
    run = behavior_run("fp32", calls)
    obs, _ = run.env.reset(seed=0)

    def step() -> None:
        nonlocal obs
        unit = run.act(obs)
        next_obs, reward, terminated, truncated, _ = run.env.step(run.env_action(unit))
        run.record(obs, unit, reward, next_obs, terminated)
        obs = run.env.reset()[0] if terminated or truncated else next_obs

    return seconds_per_call(step, calls, warmup=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300, help="timed calls of each part")
    parser.add_argument("--out", type=Path, default=RESULTS / "sac_step_split.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    plain_s = seconds_per_call(plain_update(), args.steps)
    rest_s = rest_of_step(args.steps)
    rows: dict[str, dict[str, float]] = {}
    for precision in ("fp32", "bf16"):
        update = our_update(precision)
        update_s = seconds_per_call(update, args.steps)
        matmul_s = matmul_seconds_per_step(update, 20)
        rows[precision] = {
            "update_ms": 1e3 * update_s,
            "matmul_ms": 1e3 * matmul_s,
            "x_plain_now": (plain_s + rest_s) / (update_s + rest_s),
            "x_plain_bound": (plain_s + rest_s) / (matmul_s + rest_s),
        }
        # The critic's half on a second thread (behavior.critic_thread): the same products, now
        # on two cores, so the bound above no longer bounds it.
        threaded_s = seconds_per_call(our_update(precision, critic_thread=True), args.steps)
        rows[f"{precision}, critic thread"] = {
            "update_ms": 1e3 * threaded_s,
            "matmul_ms": 1e3 * matmul_s,
            "x_plain_now": (plain_s + rest_s) / (threaded_s + rest_s),
        }
        # What the logging steps' gradient norms and Q statistics add (one step in log_interval).
        for name, threaded in ((precision, False), (f"{precision}, critic thread", True)):
            logged = our_update(precision, critic_thread=threaded, diagnostics=True)
            rows[name]["logged_update_ms"] = 1e3 * seconds_per_call(logged, args.steps)
    print(f"plain update {1e3 * plain_s:.2f} ms, rest of a step {1e3 * rest_s:.2f} ms (one thread)")
    print(
        f"{'ours':21} {'update ms':>10} {'logged ms':>10} {'matmuls ms':>11} {'x plain now':>12}"
        f" {'x plain bound':>14}"
    )
    for name, row in rows.items():
        bound = f"{row['x_plain_bound']:14.2f}" if "x_plain_bound" in row else f"{'-':>14}"
        print(
            f"{name:21} {row['update_ms']:10.2f} {row['logged_update_ms']:10.2f}"
            f" {row['matmul_ms']:11.2f} {row['x_plain_now']:12.2f} {bound}"
        )
    result = {"machine": machine(), "plain_update_ms": 1e3 * plain_s, "rest_ms": 1e3 * rest_s}
    write_json(args.out, result | {"ours": rows})


if __name__ == "__main__":
    main()
