"""Preprocessing throughput and peak memory against loading through Minari, side by side.

    python -m benchmarks.preprocess_throughput                      # 10M transitions
    python -m benchmarks.preprocess_throughput --transitions 200000 # quick

Builds (once, cached under benchmarks/data/) a Minari dataset of synthetic episodes with Hopper's
shapes, written through our writer (Minari's storage API) in chunks. Episode lengths are uniform in
[100, 1000]; 1000-step episodes end in a truncation, shorter ones in a terminal, as Hopper's do.

Each contender runs in its own subprocess that reports its own peak RSS (VmHWM, the
whole process: interpreter and imports included) and the time of the work alone (imports excluded):
- ours:   datagen.preprocessing.preprocess.preprocess into a transitions file (default config: chunk_rows,
          uncompressed, `workers` reader processes)
- ours-1w: the same with workers=1 (everything in one process)
- minari: MinariDataset.iterate_episodes into flat float32 arrays (observations, next_observations,
          actions, rewards, terminals, timeouts), as an in-memory qlearning_dataset would build them
- ours-read: our episode reader alone, in one process, no writing (where the time of `ours` goes)
Worker processes report their peak too: `workers_peak_rss_mb` is the largest one's (it counts the
pages they share with the main process, which forked them), and `total_peak_rss_mb` is the main
process's peak plus that for each worker, an upper bound on the memory of the process tree.

`--repeat N` runs all contenders N times in rounds (so each round's contenders see the same
background load) and reports every round, the median per contender and the range of the speedup.
Writes benchmarks/results/preprocess.json (or --out) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.memory import peak_rss_mb

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data" / "preprocess"
RESULTS = ROOT / "results" / "preprocess.json"
ENV_ID = "Hopper-v5"
OBS_DIM, ACT_DIM = 11, 3
CONTENDERS = ("ours", "ours-1w", "minari", "ours-read")


def synthetic_episodes(transitions: int, seed: int = 0) -> Iterator[Any]:
    from datagen.collection.rollouts import Episode

    rng = np.random.default_rng(seed)
    emitted, index = 0, 0
    while emitted < transitions:
        steps = min(int(rng.integers(100, 1001)), transitions - emitted)
        terminal = steps < 1000 and emitted + steps < transitions
        yield Episode(
            seed=index,
            observations=list(rng.normal(size=(steps + 1, OBS_DIM))),
            actions=list(rng.uniform(-1, 1, size=(steps, ACT_DIM)).astype(np.float32)),
            rewards=list(rng.normal(1.0, 0.5, size=steps)),
            terminations=[False] * (steps - 1) + [terminal],
            truncations=[False] * (steps - 1) + [not terminal],
        )
        emitted += steps
        index += 1


def dataset_for(transitions: int) -> Path:
    """The cached Minari dataset of `transitions` steps, built if missing or incomplete."""
    from datagen.collection.minari_writer import DatasetInfo, write_dataset
    from datagen.collection.reference import d4rl_reference

    root = DATA / f"{transitions}"
    folder = root / "hopper" / "synthetic-v0"
    meta = folder / "data" / "metadata.json"
    if meta.exists() and json.loads(meta.read_text()).get("total_steps") == transitions:
        return folder
    info = DatasetInfo(
        dataset_id="hopper/synthetic-v0",
        env_id=ENV_ID,
        algorithm_name="synthetic",
        description="benchmark episodes with Hopper's shapes",
        code_permalink="benchmarks/preprocess_throughput.py",
    )
    start = time.perf_counter()
    write_dataset(root, info, synthetic_episodes(transitions), d4rl_reference(ENV_ID), 64)
    print(f"built {folder} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return folder


def output_of(folder: Path) -> Path:
    return folder.parent.parent / "transitions.h5"


def run_ours(folder: Path, workers: int | None = None) -> int:
    from datagen.preprocessing.config import PreprocessConfig
    from datagen.preprocessing.preprocess import preprocess

    out = output_of(folder)
    config = PreprocessConfig() if workers is None else PreprocessConfig(workers=workers)
    summary = preprocess([("hopper/synthetic-v0", folder)], out, config)
    return int(summary["transitions"])


def run_ours_1w(folder: Path) -> int:
    return run_ours(folder, workers=1)


def run_ours_read(folder: Path) -> int:
    from datagen.preprocessing.minari_reader import read_episodes

    rows = 0
    for episode in read_episodes(folder / "data" / "main_data.hdf5", 100_000):
        for piece in episode.slices:
            rows += piece.actions.shape[0]
    return rows


def run_minari(folder: Path) -> int:
    from minari import MinariDataset

    dataset = MinariDataset(folder / "data")
    parts: dict[str, list[np.ndarray]] = {
        k: []
        for k in (
            "observations",
            "next_observations",
            "actions",
            "rewards",
            "terminals",
            "timeouts",
        )
    }
    for episode in dataset.iterate_episodes():
        observations = np.asarray(episode.observations, dtype=np.float32)
        parts["observations"].append(observations[:-1])
        parts["next_observations"].append(observations[1:])
        parts["actions"].append(np.asarray(episode.actions, dtype=np.float32))
        parts["rewards"].append(np.asarray(episode.rewards, dtype=np.float32))
        parts["terminals"].append(np.asarray(episode.terminations, dtype=bool))
        parts["timeouts"].append(np.asarray(episode.truncations & ~episode.terminations))
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    return int(arrays["rewards"].shape[0])


def child(contender: str, folder: Path) -> None:
    # Imports are paid before the clock starts (they still count in the peak RSS).
    import datagen.preprocessing.preprocess  # noqa: F401

    if contender == "minari":
        import minari  # noqa: F401
    # The previous round's file goes first, as DVC deletes a stage's outs before running it:
    # freeing a GB of blocks is not preprocessing.
    output_of(folder).unlink(missing_ok=True)
    runner = {
        "ours": run_ours,
        "ours-1w": run_ours_1w,
        "minari": run_minari,
        "ours-read": run_ours_read,
    }[contender]
    start = time.perf_counter()
    rows = runner(folder)
    seconds = time.perf_counter() - start
    main_peak = peak_rss_mb()
    # Children waited for (the reader workers): the largest one's peak RSS.
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    report = {"rows": rows, "seconds": seconds, "peak_rss_mb": main_peak}
    report["workers_peak_rss_mb"] = workers
    print(json.dumps(report))


def measure(contender: str, folder: Path) -> dict[str, float]:
    from datagen.preprocessing.config import PreprocessConfig

    cmd = [sys.executable, "-m", "benchmarks.preprocess_throughput", "--child", contender]
    result = subprocess.run(
        [*cmd, "--dataset", str(folder)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{contender} failed:\n{result.stderr}")
    report: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    report["transitions_per_s"] = report["rows"] / report["seconds"]
    workers = PreprocessConfig().workers if contender == "ours" else 1
    # workers=1 forks nothing; the child's RUSAGE_CHILDREN is then empty (or a helper's).
    report["workers"] = workers
    if workers == 1:
        report["workers_peak_rss_mb"] = 0.0
    report["total_peak_rss_mb"] = report["peak_rss_mb"] + (
        workers * report["workers_peak_rss_mb"] if workers > 1 else 0.0
    )
    return report


def table(results: dict[str, dict[str, float]]) -> None:
    print(
        f"{'contender':<10} {'transitions/s':>14} {'seconds':>9} {'peak RSS MB':>12} {'tree MB':>8}"
    )
    for name, r in results.items():
        print(
            f"{name:<10} {r['transitions_per_s']:>14,.0f} {r['seconds']:>9.2f} "
            f"{r['peak_rss_mb']:>12.0f} {r['total_peak_rss_mb']:>8.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transitions", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="rounds of all contenders")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--dataset", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dataset)
        return
    folder = dataset_for(args.transitions)
    rounds: list[dict[str, dict[str, float]]] = []
    speedups: list[float] = []
    for k in range(args.repeat):
        results = {name: measure(name, folder) for name in CONTENDERS}
        speedups.append(
            results["ours"]["transitions_per_s"] / results["minari"]["transitions_per_s"]
        )
        rounds.append(results)
        print(f"round {k + 1}/{args.repeat} (load average {os.getloadavg()[0]:.2f} after it):")
        table(results)
        print(f"speedup of ours over minari: {speedups[-1]:.2f}x\n")
    median = {
        name: {key: float(np.median([r[name][key] for r in rounds])) for key in rounds[0][name]}
        for name in CONTENDERS
    }
    summary = {
        "transitions": args.transitions,
        "repeat": args.repeat,
        "results": median,
        "speedup_vs_minari": float(np.median(speedups)),
        "speedup_range": [min(speedups), max(speedups)],
        "rounds": [
            {"results": r, "speedup_vs_minari": x} for r, x in zip(rounds, speedups, strict=True)
        ],
        "targets": {"speedup_at_least": 5.0, "peak_rss_mb_below": 1024.0},
    }
    if args.repeat > 1:
        print(f"median over {args.repeat} rounds:")
        table(median)
        print(
            f"speedup of ours over minari: median {summary['speedup_vs_minari']:.2f}x, "
            f"range {min(speedups):.2f}-{max(speedups):.2f}x"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
