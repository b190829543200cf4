"""Where a GPU training step's time goes: kernels launched per step, the GPU time they take
(summed kernel durations from torch.profiler), and the wall time per step eager and replayed from
a CUDA graph. If the graph's wall time is close to the summed kernel time, the step is bound by
its kernels (their number and latency), not by launching them; below it, kernels ran side by side
(the side-stream branches of offline_rl/side_stream.py), and `graph_wall_ms_serial` is the same graph
with those branches run in sequence.

    python -m benchmarks.gpu_profile --transitions medium.h5 --algos td3_bc iql
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.profiler import ProfilerActivity, profile

from benchmarks.algorithms import our_algorithm
from offline_rl.buffer import ReplayBuffer
from offline_rl.cuda_graph import GraphedTrainStep
from offline_rl.side_stream import set_concurrency, side_streams_of
from offline_rl.speed import accelerate
from offline_rl.trainer import random_generators
from transitions.loader import load_transitions

CUDA = torch.device("cuda")
STEPS = 20


def wall_ms(step: Callable[[], dict[str, Tensor]], repeats: int = 500) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats * 1e3


def profile_algo(name: str, transitions: Path) -> dict[str, Any]:
    data = load_transitions(transitions, CUDA)
    algo = our_algorithm(name, data.meta.obs_dim, data.meta.act_dim, 3e-4, seed=0, device=CUDA)
    buffer = ReplayBuffer.from_transitions(data, seeds=[0])
    update = accelerate(algo, device=CUDA)
    eager = lambda: update(buffer.sample(256))  # noqa: E731
    graphed = GraphedTrainStep(
        algo, lambda: buffer.sample(256), update, [*buffer.generators, *random_generators(algo)]
    )
    for _ in range(10):
        eager()
        graphed()
    serial: dict[str, Any] = {}
    if side_streams_of(algo):
        set_concurrency(algo, False)
        in_sequence = GraphedTrainStep(
            algo, lambda: buffer.sample(256), update, [*buffer.generators, *random_generators(algo)]
        )
        for _ in range(10):
            in_sequence()
        serial["graph_wall_ms_serial"] = wall_ms(in_sequence)
        set_concurrency(algo, True)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(STEPS):
            eager()
        torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type.name == "CUDA"]
    return {
        "algo": name,
        "kernels_per_step": len(kernels) / STEPS,
        "kernel_ms_per_step": sum(e.device_time for e in kernels) / STEPS / 1e3,
        "eager_wall_ms": wall_ms(eager),
        "graph_wall_ms": wall_ms(graphed),
        **serial,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transitions", type=Path, required=True)
    parser.add_argument("--algos", nargs="+", default=["td3_bc", "iql", "cql"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_profile.json"))
    args = parser.parse_args()
    rows = [profile_algo(name, args.transitions) for name in args.algos]
    for row in rows:
        print(json.dumps(row))
    args.out.write_text(
        json.dumps({"device": torch.cuda.get_device_name(), "rows": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
