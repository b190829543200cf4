"""Preprocessing throughput and peak memory against loading through Minari, side by side.

    python -m benchmarks.preprocess_throughput                      # 10M transitions
    python -m benchmarks.preprocess_throughput --transitions 200000 # quick

Builds (once, cached under benchmarks/data/) a Minari dataset of synthetic episodes with Hopper's
shapes, written through our writer (Minari's storage API) in chunks. Episode lengths are uniform in
[100, 1000]; 1000-step episodes end in a truncation, shorter ones in a terminal, as Hopper's do.

Each contender runs in its own subprocess that reports its own peak RSS (VmHWM, the
whole process: interpreter and imports included) and the time of the work alone (imports excluded):
- ours:   datagen.preprocess.preprocess into a transitions file (default chunk_rows, uncompressed)
- minari: MinariDataset.iterate_episodes into flat float32 arrays (observations, next_observations,
          actions, rewards, terminals, timeouts), as an in-memory qlearning_dataset would build them
- ours-read: our episode reader alone, no writing (where the time of `ours` goes)
Writes benchmarks/results/preprocess.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
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
CONTENDERS = ("ours", "minari", "ours-read")


def synthetic_episodes(transitions: int, seed: int = 0) -> Iterator[Any]:
    from datagen.collect import Episode

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
    from datagen.minari_writer import DatasetInfo, write_dataset
    from datagen.reference import d4rl_reference

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


def run_ours(folder: Path) -> int:
    from datagen.preprocess import PreprocessConfig, preprocess

    out = folder.parent.parent / "transitions.h5"
    summary = preprocess([("hopper/synthetic-v0", folder)], out, PreprocessConfig())
    return int(summary["transitions"])


def run_ours_read(folder: Path) -> int:
    from datagen.minari_reader import read_episodes

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
    import datagen.preprocess  # noqa: F401

    if contender == "minari":
        import minari  # noqa: F401
    runner = {"ours": run_ours, "minari": run_minari, "ours-read": run_ours_read}[contender]
    start = time.perf_counter()
    rows = runner(folder)
    seconds = time.perf_counter() - start
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}))


def measure(contender: str, folder: Path) -> dict[str, float]:
    cmd = [sys.executable, "-m", "benchmarks.preprocess_throughput", "--child", contender]
    result = subprocess.run(
        [*cmd, "--dataset", str(folder)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{contender} failed:\n{result.stderr}")
    report: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    report["transitions_per_s"] = report["rows"] / report["seconds"]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transitions", type=int, default=10_000_000)
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--dataset", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dataset)
        return
    folder = dataset_for(args.transitions)
    results = {name: measure(name, folder) for name in CONTENDERS}
    ours, minari = results["ours"], results["minari"]
    summary = {
        "transitions": args.transitions,
        "results": results,
        "speedup_vs_minari": ours["transitions_per_s"] / minari["transitions_per_s"],
        "targets": {"speedup_at_least": 5.0, "peak_rss_mb_below": 1024.0},
    }
    print(f"{'contender':<10} {'transitions/s':>14} {'seconds':>9} {'peak RSS MB':>12}")
    for name, r in results.items():
        print(
            f"{name:<10} {r['transitions_per_s']:>14,.0f} {r['seconds']:>9.1f} {r['peak_rss_mb']:>12.0f}"
        )
    print(f"speedup of ours over minari: {summary['speedup_vs_minari']:.2f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
