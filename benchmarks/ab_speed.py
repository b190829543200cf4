"""A/B timing of training updates between this checkout and another one (a baseline commit),
alternating fresh processes so that the host's drift hits both sides alike.

    git worktree add ../baseline <commit>
    python -m benchmarks.ab_speed --baseline ../baseline --algos td3_bc cql --rounds 4

Each timing is a fresh process running this file with the side's checkout first on the import
path: it builds the algorithm as the benchmarks do (HIDDEN layers, lr 3e-4, seed 0), feeds it
batches of 256 that the side's own ReplayBuffer samples from random Hopper-shaped transitions
(so a change to sampling is timed too), and reports the best of three timed blocks after a
warm-up. Prints each side's runs and medians; writes JSON.
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
OBS_DIM, ACT_DIM, DATASET = 11, 3, 50_000


def worker(
    algo_name: str, precision: str, steps: int, warmup: int, threads: int, root: Path | None = None
) -> float:
    """Best-of-3 updates/s of `algo_name` from whichever checkout is first on sys.path (which
    must be `root` when given)."""
    import torch

    import offline_rl
    from offline_rl.algos.registry import ALGORITHMS, make_algorithm

    imported = Path(offline_rl.__file__ or "").resolve().parent.parent
    if root is not None and imported != root.resolve():
        raise SystemExit(f"imported offline_rl from {imported}, not from the checkout {root}")
    from offline_rl.buffer import ReplayBuffer
    from offline_rl.speed import accelerate

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    # Built from offline_rl's registry alone (as benchmarks/algorithms.py does): an older
    # baseline checkout may lack that module or have it with another signature.
    _, config_model = ALGORITHMS[algo_name]
    config = config_model.model_validate({"hidden": (256, 256)}).with_default_lr(3e-4)
    algo = make_algorithm(algo_name, OBS_DIM, ACT_DIM, config, torch.device("cpu"))
    update = accelerate(algo, precision=precision)  # type: ignore[arg-type]
    obs, next_obs = torch.randn(DATASET, OBS_DIM), torch.randn(DATASET, OBS_DIM)
    actions = torch.rand(DATASET, ACT_DIM) * 2 - 1
    rewards, dones = torch.randn(DATASET), (torch.rand(DATASET) < 0.01).float()
    next_actions = actions.roll(-1, 0)  # ReBRAC reads the dataset's action at s'
    parameters = inspect.signature(ReplayBuffer).parameters
    # buffers before the training seeds were a batch dimension took one `seed`
    seeding: dict[str, Any] = {"seeds": [0]} if "seeds" in parameters else {"seed": 0}
    if "with_next_actions" in parameters:
        buffer = ReplayBuffer(OBS_DIM, ACT_DIM, DATASET, **seeding, with_next_actions=True)
        buffer.add(obs, actions, rewards, next_obs, dones, next_actions)
    else:  # buffers before 46c4c56 kept each field as a tensor attribute of its own
        buffer = ReplayBuffer(OBS_DIM, ACT_DIM, DATASET, **seeding)
        buffer.add(obs, actions, rewards, next_obs, dones)
        buffer.next_actions = next_actions  # type: ignore[misc]

    for _ in range(warmup):
        update(buffer.sample(256))
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(steps):
            update(buffer.sample(256))
        best = max(best, steps / (time.perf_counter() - start))
    return best


def run_side(checkout: Path, algo: str, precision: str, args: argparse.Namespace) -> float:
    env = os.environ | {"PYTHONPATH": str(checkout)}
    command = [sys.executable, str(HERE), "--worker", algo, precision, f"--root={checkout}"]
    command += [f"--steps={args.steps}", f"--warmup={args.warmup}", f"--threads={args.threads}"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"timing {algo} {precision} in {checkout} failed:\n{result.stderr}")
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", type=Path, help="the other checkout (a git worktree)")
    parser.add_argument("--algos", nargs="+", default=["td3_bc"])
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=("fp32", "bf16"))
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=200, help="updates per timed block")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ab_speed.json")
    parser.add_argument("--worker", nargs=2, metavar=("ALGO", "PRECISION"), help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)  # the worker's checkout
    args = parser.parse_args()
    if args.worker:
        algo_name, precision = args.worker
        print(worker(algo_name, precision, args.steps, args.warmup, args.threads, args.root))
        return
    if args.baseline is None or not (args.baseline / "offline_rl").is_dir():
        parser.error(f"--baseline must be a checkout of this project, got {args.baseline}")
    sides = {"baseline": args.baseline.resolve(), "this": ROOT}
    results: list[dict[str, Any]] = []
    for algo in args.algos:
        for precision in args.precisions:
            runs: dict[str, list[float]] = {side: [] for side in sides}
            for _ in range(args.rounds):
                for side, checkout in sides.items():
                    runs[side].append(run_side(checkout, algo, precision, args))
            medians = {side: statistics.median(values) for side, values in runs.items()}
            results.append({"algo": algo, "precision": precision, "runs": runs} | {
                "median": medians, "ratio": medians["this"] / medians["baseline"]
            })  # fmt: skip
            print(
                f"{algo} {precision}: baseline {sorted(round(v, 1) for v in runs['baseline'])}"
                f" -> this {sorted(round(v, 1) for v in runs['this'])} updates/s;"
                f" medians {medians['baseline']:.1f} -> {medians['this']:.1f}"
                f" ({100 * (medians['this'] / medians['baseline'] - 1):+.0f}%)",
                flush=True,
            )
    from core.atomic import write_json  # here: the worker imports the side under test

    record = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "baseline": str(args.baseline),
        "baseline_commit": _commit(args.baseline),
        "this_commit": _commit(ROOT),
        "settings": {k: v for k, v in vars(args).items() if k in ("rounds", "steps", "warmup")},
        "results": results,
    }
    write_json(args.out, record)


def _commit(checkout: Path) -> str:
    result = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
