"""On a GPU: gradient steps/s of every algorithm, eager and replayed from CUDA graphs
(offline_rl/cuda_graph.py), in fp32 and bf16, against d3rlpy 2.8.1 on the same GPU in the same
run, and the time 1M gradient steps take at each rate. The `loop` rows run the real training loop
(offline_rl.trainer.train: graphs, metrics synced every 1,000 steps, a checkpoint at the end; no
evaluation) rather than bare steps.

    python -m benchmarks.gpu_speed --transitions medium.h5 \
        --d3rlpy-data medium.d3rlpy.npz --d3rlpy-path <folder with d3rlpy and its packages>

Batch 256, 256x256 MLPs, two critics (dt: 64 windows of 20 steps), the same settings as
benchmarks/speed.py. Each row runs for `--seconds` after its warm-up (which includes capture),
synchronising with the device every 500 steps, and reports whether its losses stayed finite. For the
algorithms that run independent parts of their update concurrently on a side stream
(offline_rl/side_stream.py), a `graph fp32 serial` row runs the same graphs with those parts in
sequence. Only torch, h5py and the project are imported: the GPU machine needs no MuJoCo. `--seeds
5` adds, per algorithm, the graphed step and the loop with five training seeds at once (a step
updates every seed: seed-steps/s = steps/s x 5). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.algorithms import batch_size, batches_for, our_algorithm
from core.atomic import write_json
from offline_rl.algos.registry import algorithm_names
from offline_rl.config import LoopConfig
from offline_rl.cuda_graph import GraphedTrainStep
from offline_rl.side_stream import set_concurrency, side_streams_of
from offline_rl.speed import Precision, accelerate
from offline_rl.tracking import SeedsLogger
from offline_rl.trainer import random_generators, train
from transitions.loader import Transitions, load_transitions

WORKER = Path(__file__).resolve().parent / "d3rlpy_worker.py"
D3RLPY_ALGOS = ("bc", "td3_bc", "iql", "cql", "awac")
SYNC_EVERY = 500
CUDA = torch.device("cuda")


def time_steps(
    step: Callable[[], dict[str, Tensor]], warmup: int, seconds: float
) -> dict[str, Any]:
    metrics: dict[str, Tensor] = {}
    start = time.perf_counter()
    for _ in range(warmup):
        metrics.update(step())
    torch.cuda.synchronize()
    warmup_s = time.perf_counter() - start
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(SYNC_EVERY):
            metrics.update(step())
        steps += SYNC_EVERY
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    finite = all(bool(torch.isfinite(v).all()) for v in metrics.values())
    return {"steps_per_s": steps / elapsed, "steps": steps, "warmup_s": warmup_s, "finite": finite}


def time_ours(
    name: str,
    data: Transitions,
    graphed: bool,
    precision: Precision,
    args: argparse.Namespace,
    compile: bool = False,
    concurrent: bool = True,
    seeds: int = 1,
) -> dict[str, Any]:
    algo = our_algorithm(
        name, data.meta.obs_dim, data.meta.act_dim, 3e-4, seed=0, device=CUDA, seeds=seeds
    )
    set_concurrency(algo, concurrent)
    buffer = batches_for(algo, data, seeds)
    batch = batch_size(name)
    update = accelerate(algo, compile=compile, precision=precision, device=CUDA)
    runner = None
    if graphed:
        runner = GraphedTrainStep(
            algo,
            lambda: buffer.sample(batch),
            update,
            [*buffer.generators, *random_generators(algo)],
        )
    return time_steps(runner or (lambda: update(buffer.sample(batch))), args.warmup, args.seconds)


def has_side_streams(name: str) -> bool:
    """Whether the algorithm runs parts of its update on side streams (offline_rl/side_stream.py)."""
    return bool(side_streams_of(our_algorithm(name, 11, 3, 3e-4, seed=0)))


def flops_per_step(name: str, data: Transitions) -> float:
    algo = our_algorithm(name, data.meta.obs_dim, data.meta.act_dim, 3e-4, seed=0, device=CUDA)
    buffer = batches_for(algo, data)
    with FlopCounterMode(display=False) as counter:
        for _ in range(4):  # covers the delayed actor updates of TD3+BC and ReBRAC
            algo.update(buffer.sample(batch_size(name)))
    return counter.get_total_flops() / 4


def time_loop(
    name: str,
    data: Transitions,
    steps: int,
    workdir: Path,
    precision: Precision,
    compile: bool = False,
    seeds: int = 1,
) -> dict[str, Any]:
    """The training loop as the train stage runs it, minus evaluation; `seeds` seeds at once."""
    algo = our_algorithm(
        name, data.meta.obs_dim, data.meta.act_dim, 3e-4, seed=0, device=CUDA, seeds=seeds
    )
    buffer = batches_for(algo, data, seeds)
    loop = LoopConfig(
        steps=steps,
        batch_size=batch_size(name),
        log_interval=1000,
        eval_interval=steps,
        checkpoint_interval=steps,
        cuda_graph=True,
        precision=precision,
        compile=compile,
    )
    checkpoint = workdir / f"loop-{name}.pt"
    checkpoint.unlink(missing_ok=True)

    def logger(run_ids: list[str | None] | None) -> SeedsLogger:
        return SeedsLogger.files_only(
            tuple(range(seeds)),
            {"train": workdir / f"loop-{name}.csv", "eval": workdir / "eval.csv"},
        )

    start = time.perf_counter()
    logged, _ = train(
        algo, name, buffer, loop, checkpoint, "benchmark", logger, lambda step: [{}] * seeds, False
    )
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    logged.finish()
    windows = logged.history["train"]
    finite = all(math.isfinite(v) for v in windows[-1].values())
    result = {"steps_per_s": steps / elapsed, "steps": steps, "seconds": elapsed, "finite": finite}
    if len(windows) > 1:
        # The loop's own rate over each logging window, the first (warm-up and capture) left out:
        # with it, the fixed cost of a run (start-up, capture, the final checkpoint) is what the
        # wall time spends beyond steps at that rate.
        steady = statistics.median(w["perf/grad_steps_per_s"] for w in windows[1:])
        result |= {"steady_steps_per_s": steady, "fixed_s": elapsed - steps / steady}
    return result


def time_d3rlpy(name: str, args: argparse.Namespace) -> dict[str, Any]:
    out = args.workdir / f"gpu-d3rlpy-{name}.json"
    steps = args.d3rlpy_steps // 4 if name == "cql" else args.d3rlpy_steps
    command = [sys.executable, str(WORKER), "speed", "--data", str(args.d3rlpy_data)]
    command += ["--algo", name, "--out", str(out), "--steps", str(steps), "--warmup", "50"]
    command += ["--device", "cuda:0"]
    env = os.environ | {"PYTHONPATH": str(args.d3rlpy_path)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transitions", type=Path, required=True)
    parser.add_argument("--algos", nargs="+", default=algorithm_names(discrete_actions=False))
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per row")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--loop", nargs="*", default=["td3_bc", "iql"], help="algos run by train()")
    parser.add_argument("--loop-steps", type=int, default=100_000)
    parser.add_argument("--loop-precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--loop-compile", action="store_true", help="the loop rows compiled too")
    parser.add_argument("--compile", nargs="*", default=[], help="algos also timed compiled")
    parser.add_argument("--d3rlpy-data", type=Path, help="the transitions exported for d3rlpy")
    parser.add_argument("--d3rlpy-path", type=Path, help="PYTHONPATH holding d3rlpy 2.8.1")
    parser.add_argument("--d3rlpy-steps", type=int, default=2000)
    parser.add_argument(
        "--seeds", type=int, default=1, help="also time every row's algorithm with this many seeds"
    )
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/results/work"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_speed.json"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    data = load_transitions(args.transitions, CUDA)
    rows: list[dict[str, Any]] = []

    def add(name: str, label: str, result: dict[str, Any], flops: float) -> None:
        row = {"algo": name, "variant": label, **result}
        if "steps_per_s" in result:
            row["hours_per_1M_steps"] = 1e6 / result["steps_per_s"] / 3600
            row["minutes_per_1M_steps"] = 1e6 / result["steps_per_s"] / 60
            row["achieved_tflops"] = flops * result["steps_per_s"] / 1e12
        print(json.dumps(row), flush=True)
        rows.append(row)

    for name in args.algos:
        flops = flops_per_step(name, data)
        for graphed in (False, True):
            for precision in ("fp32", "bf16"):
                label = f"{'graph' if graphed else 'eager'} {precision}"
                add(name, label, time_ours(name, data, graphed, precision, args), flops)
        if has_side_streams(name):  # what the side-stream branches gain, in the same run
            result = time_ours(name, data, True, "fp32", args, concurrent=False)
            add(name, "graph fp32 serial", result, flops)
        if name in args.compile:
            result = time_ours(name, data, True, "fp32", args, compile=True)
            add(name, "graph compiled fp32", result, flops)
        if args.seeds > 1:  # N seeds in one graphed step: seed-steps/s = steps/s x N
            result = time_ours(name, data, True, "fp32", args, seeds=args.seeds)
            result["seed_steps_per_s"] = result["steps_per_s"] * args.seeds
            add(name, f"graph fp32 x{args.seeds} seeds", result, flops * args.seeds)
        if name in args.loop:
            precision = args.loop_precision
            for seeds in sorted({1, args.seeds}):
                result = time_loop(
                    name, data, args.loop_steps, args.workdir, precision, args.loop_compile, seeds
                )
                label = f"loop graph {'compiled ' if args.loop_compile else ''}{precision}"
                add(name, label + (f" x{seeds} seeds" if seeds > 1 else ""), result, flops * seeds)
        if name in D3RLPY_ALGOS and args.d3rlpy_data and args.d3rlpy_path:
            reference = time_d3rlpy(name, args)
            add(name, "d3rlpy 2.8.1", reference, reference.get("flops_per_step", flops))

    print_table(rows)
    write_json(
        args.out,
        {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "device": torch.cuda.get_device_name(),
            "torch": torch.__version__,
            "dataset_size": len(data),
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "rows": rows,
        },
    )


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'algo':8} {'variant':16} {'steps/s':>9} {'1M steps':>10} {'TFLOP/s':>8}  finite")
    for row in rows:
        if "steps_per_s" not in row:
            print(f"{row['algo']:8} {row['variant']:16} error: {row.get('error')}")
            continue
        minutes = row["minutes_per_1M_steps"]
        print(
            f"{row['algo']:8} {row['variant']:16} {row['steps_per_s']:9.0f} {minutes:8.1f} min"
            f" {row['achieved_tflops']:8.2f}  {row.get('finite', '')}"
            + (
                f"  steady {row['steady_steps_per_s']:.0f}/s + {row['fixed_s']:.1f} s fixed"
                if "steady_steps_per_s" in row
                else ""
            )
        )


if __name__ == "__main__":
    main()
