"""What denormal floats cost offline training on this CPU, and what `train.flush_denormals` wins.

Adam's second moments of near-zero gradients sink below 1.2e-38 within the first thousand steps,
where every operation on them takes the CPU's slow path. Each algorithm trains in two fresh
processes at once, one with denormals flushed to zero and one without (the same load on both),
one intra-op thread each, on the "medium" Hopper-v5 dataset the speed benchmark makes; each
reports its milliseconds per gradient step over consecutive windows:

    python -m benchmarks.denormals --algos td3_bc iql [--windows 8 --window-steps 1000]

The behaviour SAC's rows are in `benchmarks/speed.py` (`behavior.flush_denormals`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.algorithms import batch_size, batches_for, our_algorithm
from benchmarks.common import RESULTS, ROOT, machine, medium_dataset
from core.atomic import write_json
from offline_rl.speed import accelerate, denormals_flushed
from transitions.loader import load_transitions


def window_times(
    name: str, transitions: Path, windows: int, window_steps: int, flush: bool
) -> list[float]:
    """Milliseconds per gradient step of each window of `window_steps` steps."""
    torch.set_num_threads(1)
    data = load_transitions(transitions)
    torch.manual_seed(0)
    obs_dim, act_dim = data.observations.shape[-1], data.actions.shape[-1]
    algo = our_algorithm(name, obs_dim, act_dim, 3e-4, 0)
    buffer, update, rows = batches_for(algo, data), accelerate(algo), batch_size(name)
    times = []
    with denormals_flushed(flush):
        for _ in range(windows):
            started = time.perf_counter()
            for _ in range(window_steps):
                update(buffer.sample(rows))
            times.append(1e3 * (time.perf_counter() - started) / window_steps)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--algos", nargs="+", default=["td3_bc", "iql"])
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--window-steps", type=int, default=1_000)
    parser.add_argument("--transitions", type=Path, help="a transitions file (default: generate)")
    parser.add_argument("--dataset-steps", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=RESULTS / "denormals.json")
    parser.add_argument("--one", nargs=3, metavar=("ALGO", "FILE", "FLUSH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        name, path, flush = args.one
        times = window_times(name, Path(path), args.windows, args.window_steps, flush == "1")
        print(json.dumps(times))
        return
    transitions = args.transitions or medium_dataset(RESULTS / "work", args.dataset_steps)[1]
    rows: list[dict[str, Any]] = []
    for name in args.algos:
        runs = {}
        command = [sys.executable, "-m", "benchmarks.denormals", f"--windows={args.windows}"]
        command += [f"--window-steps={args.window_steps}", "--one", name, str(transitions)]
        both = {  # at once: the same load on both
            flush: subprocess.Popen(
                [*command, "1" if flush else "0"], stdout=subprocess.PIPE, text=True, cwd=ROOT
            )
            for flush in (False, True)
        }
        for flush, process in both.items():
            out, _ = process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"{name} (flush {flush}) failed")
            runs[flush] = json.loads(out.strip().splitlines()[-1])
        # the first window is the one where the moments are still sinking
        kept, flushed = statistics.median(runs[False][1:]), statistics.median(runs[True][1:])
        row = {"algo": name, "ms_per_step": kept, "ms_per_step_flushed": flushed}
        row |= {"speedup": kept / flushed, "windows": runs[False], "windows_flushed": runs[True]}
        rows.append(row)
        print(f"{name:8} {kept:6.2f} ms/step, flushed {flushed:6.2f} ({kept / flushed:.2f}x)")
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    write_json(args.out, {"machine": machine(), "settings": settings, "rows": rows})


if __name__ == "__main__":
    main()
