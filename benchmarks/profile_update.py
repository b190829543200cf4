"""Where a training step's time goes (issue 11's profiling switch), measured with torch.profiler.

Profiles `--steps` steps of the training loop (sample a batch, update) after a warm-up and splits
the wall time into sampling, forward passes, backward passes, optimiser steps, target-network
updates and the rest (Python between ops). Run it before and after a speed change:

    python -m benchmarks.profile_update --algo td3_bc
    python -m benchmarks.profile_update --algo td3_bc --precision bf16
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from benchmarks.algorithms import batch_size, batches_for
from benchmarks.common import RESULTS, medium_dataset, our_algorithm
from core.atomic import write_json
from offline_rl.algos.registry import algorithm_names
from offline_rl.speed import accelerate
from transitions.loader import load_transitions


def category(name: str) -> str:
    if "Backward" in name or name.startswith("autograd::engine"):
        return "backward"
    if name.startswith("Optimizer.step"):
        return "optimiser step"
    if name.startswith("Optimizer.zero_grad"):
        return "optimiser zero_grad"
    if "foreach_lerp" in name:
        return "target update"
    return "forward"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--algo", default="td3_bc", choices=algorithm_names(discrete_actions=False))
    parser.add_argument("--transitions", type=Path)
    parser.add_argument("--dataset-steps", type=int, default=50_000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=RESULTS / "work")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    transitions = args.transitions or medium_dataset(args.workdir, args.dataset_steps)[1]
    data = load_transitions(transitions)
    algo = our_algorithm(args.algo, data.meta.obs_dim, data.meta.act_dim, 3e-4, seed=0)
    buffer = batches_for(algo, data)
    update = accelerate(algo, compile=args.compile, precision=args.precision)
    for _ in range(args.warmup):
        update(buffer.sample(batch_size(args.algo)))

    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            with record_function("sample"):
                batch = buffer.sample(batch_size(args.algo))
            with record_function("update"):
                update(batch)
    wall_us = (time.perf_counter() - start) * 1e6

    spent: dict[str, float] = defaultdict(float)
    update_us = 0.0
    for event in prof.events():
        if event.cpu_parent is None:
            if event.name == "sample":
                spent["sampling"] += event.cpu_time_total
            elif event.name == "update":
                update_us += event.cpu_time_total
        elif event.cpu_parent.name == "update" and event.cpu_parent.cpu_parent is None:
            spent[category(event.name)] += event.cpu_time_total
    spent["python between ops"] = update_us - sum(v for k, v in spent.items() if k != "sampling")
    spent["loop and profiler overhead"] = wall_us - update_us - spent["sampling"]
    label = f"{args.algo} {args.precision}{' compiled' if args.compile else ''}"
    print(f"{label}: {args.steps} steps under the profiler, {wall_us / args.steps:.0f} us/step")
    for name, us in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {name:28} {us / args.steps:8.0f} us/step  {100 * us / wall_us:5.1f}%")
    result: dict[str, Any] = {
        "label": label,
        "steps": args.steps,
        "us_per_step": wall_us / args.steps,
        "us_per_step_by_part": {k: v / args.steps for k, v in spent.items()},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    suffix = f"{args.algo}-{args.precision}{'-compiled' if args.compile else ''}"
    write_json(args.out or RESULTS / f"profile-{suffix}.json", result)


if __name__ == "__main__":
    main()
