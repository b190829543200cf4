"""Does the behaviour SAC learn as a plain SAC does? Learning curves of both over several seeds.

Ours is the behaviour stage's learner as the stage runs it (`datagen.behavior.train_behavior`);
the plain one is `benchmarks/plain_sac.py`, the same maths written the usual way. Both take the
paper's hyper-parameters, the same warm-up of uniform actions and evaluate the deterministic
policy on the same episode seeds every `--eval-every` steps. Every run is a fresh process with one
torch thread, `--jobs` at a time; each finished run is added to the JSON at once, so a long
comparison keeps what it has done.

    python -m benchmarks.sac_learning --steps 100000 --seeds 0 1 2 --jobs 2

prints the mean ± std over seeds of both at each evaluation, and each side's env steps/s.
`--impls ours-fast` adds the stage with its CPU speed switches on (`behavior.precision: bf16`,
`behavior.flush_denormals: true`, `behavior.critic_thread: true`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

if TYPE_CHECKING:
    from datagen.behavior.config import BehaviorConfig

from benchmarks.common import RESULTS, ROOT, machine
from core.atomic import write_json

# ours-fast: the behaviour stage with its CPU speed switches on (bf16 autocast, denormals flushed,
# the critic's half on a second thread)
IMPLEMENTATIONS = ("ours", "ours-fast", "plain")


def run_ours(
    env_id: str,
    steps: int,
    seed: int,
    random_steps: int,
    eval_every: int,
    precision: Literal["fp32", "bf16"] = "fp32",
    fast_cpu: bool = False,
) -> dict[str, Any]:
    """`fast_cpu`: with `behavior.flush_denormals` and `behavior.critic_thread` on."""
    from datagen.behavior.config import BehaviorConfig

    config = BehaviorConfig(
        steps=steps,
        random_steps=random_steps,
        checkpoint_steps=tuple(range(eval_every, steps + 1, eval_every)),
        eval_episodes=5,
        precision=precision,
        flush_denormals=fast_cpu,
        critic_thread=fast_cpu,
    )
    return run_behavior(env_id, config, seed)


def run_behavior(env_id: str, config: BehaviorConfig, seed: int) -> dict[str, Any]:
    """The behaviour stage's training in a scratch folder: evaluated returns by step, and the
    environment steps/s of its learning phase (acting, env and update time of the logging windows
    after the first, whose env time includes the warm-up's steps)."""
    from datagen.behavior.train import train_behavior
    from offline_rl.tracking import RunLogger

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)

        def logger(run_id: str | None) -> RunLogger:
            return RunLogger.files_only({k: work / f"{k}.csv" for k in ("train", "losses", "eval")})

        result, log = train_behavior(env_id, config, seed, work / "out", logger, progress=False)
        first_counted = config.random_steps + config.log_interval
        windows = [w for w in log.history.get("losses", []) if w["step"] > first_counted]
        busy = sum(w["perf/env_s"] + w["perf/update_s"] for w in windows)
        log.finish()
    return {
        "returns": {str(k): v for k, v in sorted(result.checkpoints.items())},
        "learning_steps_per_s": config.log_interval * len(windows) / busy if busy else None,
    }


def run_one(
    impl: str, env_id: str, steps: int, seed: int, random_steps: int, eval_every: int
) -> dict[str, Any]:
    torch.set_num_threads(1)
    started = time.perf_counter()
    if impl == "ours":
        result = run_ours(env_id, steps, seed, random_steps, eval_every)
    elif impl == "ours-fast":
        result = run_ours(env_id, steps, seed, random_steps, eval_every, "bf16", fast_cpu=True)
    else:
        from benchmarks.plain_sac import train_plain_sac

        result = train_plain_sac(env_id, steps, seed, random_steps, eval_every)
        result["returns"] = {str(k): v for k, v in result["returns"].items()}
    return result | {"impl": impl, "seed": seed, "wall_s": time.perf_counter() - started}


def run_fresh(impl: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.sac_learning", "--one", impl, str(seed)]
    command += [f"--env={args.env}", f"--steps={args.steps}", f"--eval-every={args.eval_every}"]
    command += [f"--random-steps={args.random_steps}"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{impl} seed {seed} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per evaluation step, each implementation's mean, std and seeds."""
    steps = sorted({int(s) for run in runs for s in run["returns"]})
    table = []
    for step in steps:
        row: dict[str, Any] = {"step": step}
        for impl in IMPLEMENTATIONS:
            values = [
                r["returns"][str(step)]
                for r in runs
                if r["impl"] == impl and str(step) in r["returns"]
            ]
            if values:
                row[impl] = {
                    "mean": statistics.fmean(values),
                    "std": statistics.pstdev(values),
                    "min": min(values),
                    "max": max(values),
                    "n": len(values),
                }
        table.append(row)
    return table


def print_table(runs: list[dict[str, Any]]) -> None:
    print(
        f"\n{'step':>8} "
        + " ".join(f"{impl + ' mean ± std [min, max]':>34}" for impl in IMPLEMENTATIONS)
    )
    for row in summarise(runs):
        cells = []
        for impl in IMPLEMENTATIONS:
            s = row.get(impl)
            cells.append(
                f"{s['mean']:8.0f} ± {s['std']:5.0f} [{s['min']:6.0f}, {s['max']:6.0f}]"
                if s
                else f"{'-':>34}"
            )
        print(f"{row['step']:8d} " + " ".join(f"{c:>34}" for c in cells))
    for impl in IMPLEMENTATIONS:
        rates = [
            r["learning_steps_per_s"]
            for r in runs
            if r["impl"] == impl and r["learning_steps_per_s"]
        ]
        if rates:
            print(
                f"{impl}: {statistics.median(rates):.0f} env steps/s (learning phase, 1 thread, median of {len(rates)})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--random-steps", type=int, default=5_000)
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--impls", nargs="+", choices=IMPLEMENTATIONS, default=["ours", "plain"])
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (one thread each)")
    parser.add_argument("--out", type=Path, default=RESULTS / "sac_learning.json")
    parser.add_argument("--one", nargs=2, metavar=("IMPL", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        impl, seed = args.one[0], int(args.one[1])
        result = run_one(impl, args.env, args.steps, seed, args.random_steps, args.eval_every)
        print(json.dumps(result))
        return
    runs: list[dict[str, Any]] = []
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}

    def save() -> None:
        write_json(
            args.out,
            {
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "machine": machine() | {"torch_threads": 1, "jobs": args.jobs},
                "settings": settings,
                "runs": sorted(runs, key=lambda r: (r["impl"], r["seed"])),
                "summary": summarise(runs),
            },
        )

    # seeds outermost, so that a partial result already compares both sides
    order = [(impl, seed) for seed in args.seeds for impl in args.impls]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_fresh, impl, seed, args) for impl, seed in order]
        for future in futures:
            run = future.result()
            runs.append(run)
            print(
                json.dumps({k: run[k] for k in ("impl", "seed", "wall_s", "learning_steps_per_s")})
                + " "
                + json.dumps(run["returns"]),
                flush=True,
            )
            save()
    print_table(runs)


if __name__ == "__main__":
    main()
