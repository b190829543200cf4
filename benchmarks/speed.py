"""Gradient steps/s, loading and collection, ours against d3rlpy and Minari, and the behaviour SAC
against a plain eager SAC, in one run.

Every comparison runs in this one process tree on the same data, the same machine and with the same
torch threads (2), one side right after the other, so both see the same background load; each
training timing, ours as d3rlpy's, runs in a fresh process of its own. Training:
batch 256, 256x256 MLPs, two critics (the Decision Transformer: the paper's 64 windows of 20 steps,
3 layers 128 wide); warm-up steps are excluded and a fixed number of steps is
timed. For every training row the hardware bound is FLOPs per gradient step (FlopCounterMode over
4 updates, so delayed actor updates count at their rate) divided by this machine's measured matmul
throughput at the layers' shape (256x256 by 256x256), in fp32 and in bf16; and, tighter, the
step's own matrix products at their own shapes, each timed alone (`benchmarks/matmul_bound.py`).

With `--rounds N` each training row is timed N times, ours and d3rlpy in turn, and the median
run is reported (the host's speed drifts by up to a third over minutes; every round is in the JSON).

    python -m benchmarks.speed --steps 500 --rounds 3

Why one file of some 400 lines: `main` lays the table out row by row (training, loading,
collection, the behaviour SAC), each of our timings beside the one it is compared with, so every
comparison the JSON records reads in one place, in the table's order.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from argparse import SUPPRESS
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import collection_throughput as collection
from benchmarks.algorithms import batch_size, batches_for
from benchmarks.common import (
    ENV_ID,
    RESULTS,
    ROOT,
    export_for_d3rlpy,
    machine,
    medium_dataset,
    our_algorithm,
    run_d3rlpy,
)
from benchmarks.matmul_bound import matmul_seconds_per_step
from benchmarks.plain_sac import train_plain_sac
from benchmarks.sac_learning import run_behavior
from core.atomic import write_json
from datagen.behavior.config import BehaviorConfig
from offline_rl.algos.registry import ALGORITHMS, algorithm_names
from offline_rl.speed import Precision, accelerate
from transitions.loader import Transitions, load_transitions

D3RLPY_ALGOS = ("bc", "td3_bc", "iql", "cql", "awac", "dt")
FLOP_UPDATES = 4


def matmul_gflops(dtype: torch.dtype, size: int = 256, seconds: float = 1.0) -> float:
    """Throughput of (size x size) @ (size x size), the hidden layers' shape at batch 256."""
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    for _ in range(20):
        torch.mm(a, b)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(50):
            torch.mm(a, b)
        count += 50
    return 2 * size**3 * count / (time.perf_counter() - start) / 1e9


def time_ours(
    name: str,
    data: Transitions,
    steps: int,
    warmup: int,
    precision: Precision = "fp32",
    compile: bool = False,
    seeds: int = 1,
) -> dict[str, float]:
    """Gradient steps/s of `seeds` seeds trained together (each step updates every seed)."""
    algo = our_algorithm(name, data.meta.obs_dim, data.meta.act_dim, 3e-4, seed=0, seeds=seeds)
    buffer = batches_for(algo, data, seeds)
    batch = batch_size(name)
    update = accelerate(algo, compile=compile, precision=precision)
    start = time.perf_counter()
    for _ in range(warmup):
        update(buffer.sample(batch))
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        update(buffer.sample(batch))
    elapsed = time.perf_counter() - start
    with FlopCounterMode(display=False) as counter:
        for _ in range(FLOP_UPDATES):
            update(buffer.sample(batch))
    matmul_s = matmul_seconds_per_step(lambda: update(buffer.sample(batch)), FLOP_UPDATES)
    return {
        "steps_per_s": steps / elapsed,
        "matmul_seconds_per_step": matmul_s,
        "seconds": elapsed,
        "warmup_s": warmup_s,
        "flops_per_step": counter.get_total_flops() / FLOP_UPDATES,
        "compiled": float(update.compiled),
    }


def time_ours_fresh(
    name: str,
    transitions: Path,
    steps: int,
    warmup: int,
    threads: int,
    precision: Precision = "fp32",
    compile: bool = False,
    seeds: int = 1,
) -> dict[str, float]:
    """`time_ours` in a fresh process, as d3rlpy's worker runs: nothing an earlier row left in
    this process (allocator state, compiled code, the counting modes) reaches this one."""
    command = [sys.executable, "-m", "benchmarks.speed", "--time-ours", name, precision]
    command += [f"--transitions={transitions}", f"--steps={steps}", f"--warmup={warmup}"]
    command += [f"--threads={threads}", f"--time-seeds={seeds}"]
    command += ["--compile-ours"] if compile else []
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"timing {name} {precision} failed:\n{result.stderr[-3000:]}")
    timing: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return timing


# The SAC rows: implementation, precision, `behavior.flush_denormals` (the plain SAC: the same CPU
# mode for its whole run), `behavior.critic_thread`, torch intra-op threads (None: `--threads`).
# The plain SAC, one thread, is the yardstick; with two it is the most it makes of both cores.
SAC_VARIANTS: dict[str, tuple[str, Precision, bool, bool, int | None]] = {
    "plain": ("plain", "fp32", False, False, None),
    "plain, two threads": ("plain", "fp32", False, False, 2),
    "plain, denormals flushed": ("plain", "fp32", True, False, None),
    "fp32": ("ours", "fp32", False, False, None),
    "bf16": ("ours", "bf16", False, False, None),
    "bf16, denormals flushed": ("ours", "bf16", True, False, None),
    "fp32, denormals flushed, critic thread": ("ours", "fp32", True, True, None),
    "bf16, denormals flushed, critic thread": ("ours", "bf16", True, True, None),
}


def time_sac(variant: str, steps: int, random_steps: int) -> dict[str, float]:
    """Environment steps/s of online SAC's learning phase (act, env step, store, one update),
    warm-up excluded: the behaviour stage's learner or the plain one of benchmarks/plain_sac.py."""
    impl, precision, flush, critic_thread, _ = SAC_VARIANTS[variant]
    if impl == "ours":
        config = BehaviorConfig(
            steps=random_steps + steps,
            random_steps=random_steps,
            checkpoint_steps=(random_steps + steps,),
            log_interval=max(steps // 6, 1),
            precision=precision,
            flush_denormals=flush,
            critic_thread=critic_thread,
        )
        result = run_behavior(ENV_ID, config, seed=0)
    else:
        torch.set_flush_denormal(flush)
        result = train_plain_sac(ENV_ID, random_steps + steps, 0, random_steps)
    return {"steps_per_s": result["learning_steps_per_s"]}


def time_sac_fresh(variant: str, steps: int, random_steps: int, threads: int) -> dict[str, float]:
    threads = SAC_VARIANTS[variant][4] or threads
    command = [sys.executable, "-m", "benchmarks.speed", "--time-sac", variant]
    command += [f"--sac-steps={steps}", f"--sac-random-steps={random_steps}"]
    command += [f"--threads={threads}"]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"timing SAC {variant} failed:\n{result.stderr[-3000:]}")
    timing: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return timing


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median steps/s (the lower middle one of an even count), all its fields
    kept, and every run's steps/s alongside."""
    ranked = sorted(runs, key=lambda run: run["steps_per_s"])
    return ranked[(len(ranked) - 1) // 2] | {"all_steps_per_s": [r["steps_per_s"] for r in runs]}


def best_of(repeats: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def minari_arrays(dataset_dir: Path) -> dict[str, np.ndarray]:
    """What a user of Minari writes to get flat transitions: iterate_episodes and concatenate."""
    import minari

    dataset = minari.MinariDataset(dataset_dir / "data")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "next", "act", "rew", "term")}
    for episode in dataset.iterate_episodes():
        parts["obs"].append(episode.observations[:-1])
        parts["next"].append(episode.observations[1:])
        parts["act"].append(episode.actions)
        parts["rew"].append(episode.rewards)
        parts["term"].append(episode.terminations)
    return {k: np.concatenate(v) for k, v in parts.items()}


def bare_env(steps: int) -> None:
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transitions", type=Path, help="a transitions file (default: generate)")
    parser.add_argument("--dataset-steps", type=int, default=50_000)
    parser.add_argument("--steps", type=int, default=500, help="timed gradient steps per row")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument(
        "--rounds", type=int, default=1, help="timings per training row, ours and d3rlpy in turn"
    )
    parser.add_argument("--algos", nargs="*", default=algorithm_names(discrete_actions=False))
    parser.add_argument("--no-d3rlpy", action="store_true", help="skip d3rlpy's rows")
    parser.add_argument(
        "--compile", nargs="*", default=["td3_bc"], help="algos also timed compiled"
    )
    parser.add_argument("--collect-steps", type=int, default=100_000)
    parser.add_argument("--sac-steps", type=int, default=3_000, help="timed SAC env steps")
    parser.add_argument("--sac-random-steps", type=int, default=1_000)
    parser.add_argument("--no-sac", action="store_true", help="skip the behaviour SAC rows")
    parser.add_argument(
        "--sac-variants", nargs="+", choices=SAC_VARIANTS, default=list(SAC_VARIANTS),
        help="the SAC rows to time (the plain one always)",
    )  # fmt: skip
    parser.add_argument("--no-collect", action="store_true", help="skip the collection rows")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=RESULTS / "work")
    parser.add_argument("--out", type=Path, default=RESULTS / "speed.json")
    # A fresh process timing one of our rows (time_ours_fresh calls it).
    parser.add_argument("--time-ours", nargs=2, metavar=("ALGO", "PRECISION"), help=SUPPRESS)
    parser.add_argument("--compile-ours", action="store_true", help=SUPPRESS)
    parser.add_argument("--time-seeds", type=int, default=1, help=SUPPRESS)
    parser.add_argument(
        "--seeds", type=int, default=5, help="training seeds of the many-seeds rows (0: none)"
    )
    parser.add_argument("--seed-algos", nargs="*", default=["td3_bc", "iql", "cql"])
    parser.add_argument("--time-sac", choices=SAC_VARIANTS, help=SUPPRESS)
    args = parser.parse_args()
    if args.time_sac:
        torch.set_num_threads(args.threads)
        print(json.dumps(time_sac(args.time_sac, args.sac_steps, args.sac_random_steps)))
        return
    if args.time_ours:
        torch.set_num_threads(args.threads)
        name, precision = args.time_ours
        data = load_transitions(args.transitions)
        timing = time_ours(
            name, data, args.steps, args.warmup, precision, args.compile_ours, args.time_seeds
        )
        print(json.dumps(timing))
        return
    unknown = [a for a in args.algos if a not in ALGORITHMS]
    if unknown:
        parser.error(f"not registered in offline_rl.algos: {unknown}")
    torch.set_num_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.transitions:
        dataset_dir, transitions = None, args.transitions
    else:
        dataset_dir, transitions = medium_dataset(args.workdir, args.dataset_steps)
    data = load_transitions(transitions)
    exported = export_for_d3rlpy(transitions, args.workdir / f"{transitions.stem}.d3rlpy.npz")

    gflops = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    print(f"matmul 256x256x256: fp32 {gflops['fp32']:.0f} GFLOPS, bf16 {gflops['bf16']:.0f}")
    rows: list[dict[str, Any]] = []

    def training_row(
        name: str, label: str, ours: dict[str, Any], ref: dict[str, Any] | None
    ) -> None:
        bound = {p: gflops[p] * 1e9 / ours["flops_per_step"] for p in gflops}
        row = {
            "kind": "train",
            "name": label,
            "ours": ours["steps_per_s"],
            "unit": "grad steps/s",
            "reference": ref["steps_per_s"] if ref else None,
            "ours_rounds": ours.get("all_steps_per_s", [ours["steps_per_s"]]),
            "reference_rounds": ref.get("all_steps_per_s") if ref else None,
            "reference_name": "d3rlpy 2.8.1" if ref else None,
            "gflop_per_step": ours["flops_per_step"] / 1e9,
            "reference_gflop_per_step": ref["flops_per_step"] / 1e9 if ref else None,
            "bound_fp32": bound["fp32"],
            "bound_bf16": bound["bf16"],
            "percent_of_fp32_bound": 100 * ours["steps_per_s"] / bound["fp32"],
            # the step's own matmuls, each timed alone, in the row's precision
            "bound_own_shapes": 1.0 / ours["matmul_seconds_per_step"],
            "percent_of_own_shapes_bound": 100
            * ours["steps_per_s"]
            * ours["matmul_seconds_per_step"],
            "warmup_s": ours["warmup_s"],
            "compiled": bool(ours["compiled"]),
        }
        print(row, flush=True)
        rows.append(row)

    for name in args.algos:
        fp32, bf16, refs = [], [], []
        run_args = (transitions, args.steps, args.warmup, args.threads)
        for _ in range(args.rounds):  # alternating, so that a slow spell of the host hits both
            fp32.append(time_ours_fresh(name, *run_args))
            if name in D3RLPY_ALGOS and not args.no_d3rlpy:
                out = args.workdir / f"speed-d3rlpy-{name}.json"
                refs.append(run_d3rlpy(
                    "speed", exported, name, out, steps=args.steps, warmup=args.warmup,
                    threads=args.threads, batch_size=batch_size(name),
                ))  # fmt: skip
            bf16.append(time_ours_fresh(name, *run_args, "bf16"))
        ref = median_run(refs) if refs else None
        training_row(name, f"{name} fp32", median_run(fp32), ref)
        training_row(name, f"{name} bf16", median_run(bf16), ref)
        if name in args.compile:
            compiled = time_ours_fresh(name, *run_args, compile=True)
            training_row(name, f"{name} fp32 compiled", compiled, ref)

    # Many seeds in one process against the same seeds one after another: seed-steps/s (each
    # gradient step of an N-seed run is a step of every seed); the single-seed run's rate is
    # what N runs in sequence reach in total.
    for name in args.seed_algos if args.seeds > 1 else []:
        together, alone = [], []
        run_args = (transitions, args.steps, args.warmup, args.threads)
        for _ in range(args.rounds):
            alone.append(time_ours_fresh(name, *run_args))
            timed = time_ours_fresh(name, *run_args, seeds=args.seeds)
            together.append(timed | {"steps_per_s": timed["steps_per_s"] * args.seeds})
        both, one = median_run(together), median_run(alone)
        seeds_row: dict[str, Any] = {"kind": "seeds", "unit": "seed-steps/s"}
        seeds_row |= {"name": f"{name} {args.seeds} seeds in one process"}
        seeds_row |= {"ours": both["steps_per_s"], "ours_rounds": both["all_steps_per_s"]}
        seeds_row |= {"reference": one["steps_per_s"], "reference_rounds": one["all_steps_per_s"]}
        seeds_row |= {"reference_name": f"{args.seeds} single-seed runs in sequence"}
        rows.append(seeds_row)
        print(seeds_row, flush=True)

    # Behaviour SAC: the online loop, env steps/s, against a plain eager SAC (same maths).
    if not args.no_sac:
        sac_args = (args.sac_steps, args.sac_random_steps, args.threads)
        variants = ["plain", *(v for v in args.sac_variants if v != "plain")]
        timings: dict[str, list[dict[str, Any]]] = {variant: [] for variant in variants}
        for _ in range(args.rounds):  # alternating, so that a change of load hits all alike
            for variant in variants:
                timings[variant].append(time_sac_fresh(variant, *sac_args))
        plain = median_run(timings["plain"])
        for variant in variants[1:]:
            impl = SAC_VARIANTS[variant][0]
            ours = median_run(timings[variant])
            sac_row: dict[str, Any] = {
                "kind": "sac",
                "name": f"{'plain' if impl == 'plain' else 'behaviour'} SAC {variant}",
                "unit": "env steps/s",
            }
            sac_row |= {"ours": ours["steps_per_s"], "ours_rounds": ours["all_steps_per_s"]}
            sac_row |= {
                "reference": plain["steps_per_s"],
                "reference_rounds": plain["all_steps_per_s"],
            }
            sac_row |= {"reference_name": "plain eager SAC (benchmarks/plain_sac.py)"}
            rows.append(sac_row)
            print(sac_row, flush=True)

    # Loading: our transitions file into tensors against Minari episodes into flat arrays.
    load_ours = best_of(3, lambda: load_transitions(transitions))
    row: dict[str, Any] = {"kind": "load", "name": "load transitions", "unit": "transitions/s"}
    row |= {"ours": len(data) / load_ours, "seconds": load_ours}
    if dataset_dir is not None:
        load_minari = best_of(3, lambda: minari_arrays(dataset_dir))
        row |= {"reference": len(data) / load_minari, "reference_name": "minari iterate_episodes"}
    rows.append(row)
    print(row, flush=True)

    # Collection: the SAC behaviour policy in the loop, env steps/s including writing the Minari
    # dataset; ours as the collect stage runs it (8 vector envs, shards of 25k steps, 1 and 2
    # worker processes), Minari's documented DataCollector loop (one process, in its own venv: it
    # needs jax); the bare env is given for scale. Small runs are dominated by worker start-up.
    if not args.no_collect:
        n = args.collect_steps
        try:
            reference: float | None = collection.datacollector_in_venv(n)
            why = None
        except Exception as error:  # report the rows without a reference rather than fail
            reference, why = None, f"{type(error).__name__}: {error}"
        bare = n / best_of(1, lambda: bare_env(n))
        for workers in (1, 2):
            row = {"kind": "collect", "unit": "env steps/s", "bare_env": bare}
            row |= {"name": f"collect (SAC policy, {workers} worker{'s' * (workers > 1)})"}
            row |= {"ours": collection.ours(n, workers=workers, num_envs=8, shard_steps=25_000)}
            row |= {"reference": reference, "reference_name": "minari.DataCollector"}
            row |= {"reference_error": why}
            rows.append(row)
            print(row, flush=True)

    print_table(rows, gflops)
    write_json(
        args.out,
        {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": machine() | {"torch_threads": args.threads},
            "matmul_gflops": gflops,
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "dataset_size": len(data),
            "rows": rows,
        },
    )


def print_table(rows: list[dict[str, Any]], gflops: dict[str, float]) -> None:
    print(f"\nmatmul 256^3: fp32 {gflops['fp32']:.0f} GFLOPS, bf16 {gflops['bf16']:.0f} GFLOPS")
    head = f"{'row':31} {'ours':>9} {'ref':>9} {'x ref':>6} {'GFLOP/step':>10}"
    head += f" {'fp32 bound':>10} {'% bound':>7} {'bf16 bound':>10} {'own shapes':>10} {'%':>4}"
    print(head + "  unit / reference")
    for r in rows:
        ref = r.get("reference")
        ratio = f"{r['ours'] / ref:6.2f}" if ref else f"{'-':>6}"
        ref_text = f"{ref:9.0f}" if ref else f"{'-':>9}"
        line = f"{r['name']:31} {r['ours']:9.0f} {ref_text} {ratio}"
        if r["kind"] == "train":
            line += f" {r['gflop_per_step']:10.3f} {r['bound_fp32']:10.0f}"
            line += f" {r['percent_of_fp32_bound']:6.0f}% {r['bound_bf16']:10.0f}"
            line += f" {r['bound_own_shapes']:10.0f} {r['percent_of_own_shapes_bound']:3.0f}%"
        else:
            line += " " * 58
        print(f"{line}  {r['unit']} / {r.get('reference_name') or '-'}")


if __name__ == "__main__":
    main()
