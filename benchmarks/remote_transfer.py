"""`dvc push` / `dvc pull` of a 1M-step Hopper-sized Minari dataset against loopback S3.

Writes a synthetic dataset with Hopper-v5's shapes (11 observations, 3 actions; episodes of 1000
steps, Hopper's time limit) through the same writer as the collect stage, tracks it with `dvc add`
in a scratch DVC repository, and times push, then pull after deleting the cache and the files,
against moto_server on 127.0.0.1 (S3 API through DVC's s3 remote) and against a local folder.
Also reports the layout DVC transfers: Minari's HDF5 backend keeps a dataset in one data file
plus a small metadata file, so a push is a handful of objects, not thousands.

    python -m benchmarks.remote_transfer [--steps 1000000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import write_json
from datagen.collection.minari_writer import DatasetInfo, write_dataset
from datagen.collection.reference import d4rl_reference
from datagen.collection.rollouts import Episode
from tests.pipelines.s3_server import moto_s3
from tests.pipelines.stage_runner import file_hashes

ENV_ID = "Hopper-v5"
OBS_DIM, ACT_DIM = 11, 3
DATASET_ID = "hopper/synthetic-v0"
RESULTS = Path(__file__).parent / "results" / "remote_transfer.json"
BIN = Path(sys.executable).parent


def synthetic_episodes(steps: int, episode_len: int, seed: int = 0) -> Iterator[Episode]:
    """Random data of Hopper's shapes: incompressible, so transfer sizes are worst case."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < steps:
        n = min(episode_len, steps - done)
        yield Episode(
            seed=seed + done,
            observations=list(rng.standard_normal((n + 1, OBS_DIM), dtype=np.float32)),
            actions=list(rng.uniform(-1, 1, (n, ACT_DIM)).astype(np.float32)),
            rewards=list(rng.standard_normal(n)),
            terminations=[False] * n,
            truncations=[False] * (n - 1) + [True],
        )
        done += n


def dvc(args: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> float:
    """Run a dvc command; return its wall time in seconds."""
    full_env = {**os.environ, "DVC_NO_ANALYTICS": "1", **(env or {})}
    start = time.perf_counter()
    result = subprocess.run(
        [str(BIN / "dvc"), *args], cwd=cwd, env=full_env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def layout(root: Path) -> list[dict[str, Any]]:
    return [
        {"file": str(p.relative_to(root)), "bytes": p.stat().st_size}
        for p in sorted(root.rglob("*"))
        if p.is_file()
    ]


def round_trip(
    repo: Path, remote: str, env: Mapping[str, str], expected: dict[str, str]
) -> dict[str, Any]:
    push_s = dvc(["push", "-r", remote], repo, env)
    shutil.rmtree(repo / ".dvc/cache")
    shutil.rmtree(repo / "data/datasets")
    pull_s = dvc(["pull", "-r", remote], repo, env)
    if file_hashes(repo, ["data/datasets"]) != expected:
        raise RuntimeError(f"files pulled from {remote} differ from the pushed ones")
    return {"push_s": push_s, "pull_s": pull_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--episode-len", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="remote-transfer-") as tmp, moto_s3() as s3:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
        dvc(["init", "-q"], repo)
        dvc(["remote", "add", "s3", s3.url], repo)
        dvc(["remote", "modify", "s3", "endpointurl", s3.endpoint], repo)
        dvc(["remote", "add", "folder", str(Path(tmp) / "store")], repo)

        start = time.perf_counter()
        info = DatasetInfo(DATASET_ID, ENV_ID, "synthetic", "transfer benchmark", "benchmarks")
        summary = write_dataset(
            repo / "data/datasets",
            info,
            synthetic_episodes(args.steps, args.episode_len),
            d4rl_reference(ENV_ID),
        )
        write_s = time.perf_counter() - start
        files = layout(repo / "data/datasets")
        total_bytes = sum(f["bytes"] for f in files)
        add_s = dvc(["add", "data/datasets"], repo)
        expected = file_hashes(repo, ["data/datasets"])
        objects = sum(1 for p in (repo / ".dvc/cache").rglob("*") if p.is_file())

        runs = {
            "s3 (moto_server, loopback)": round_trip(repo, "s3", s3.env(), expected),
            "local folder": round_trip(repo, "folder", {}, expected),
        }

    mb = total_bytes / 1e6
    print(f"dataset: {summary.steps} steps, {summary.episodes} episodes, {mb:.1f} MB")
    print(f"write {write_s:.1f} s, dvc add (hash + cache) {add_s:.1f} s, {objects} cache objects")
    for f in files:
        print(f"  {f['file']:<50} {f['bytes'] / 1e6:>10.2f} MB")
    print(f"\n{'remote':<28} {'push s':>8} {'push MB/s':>10} {'pull s':>8} {'pull MB/s':>10}")
    for name, r in runs.items():
        print(
            f"{name:<28} {r['push_s']:>8.1f} {mb / r['push_s']:>10.1f}"
            f" {r['pull_s']:>8.1f} {mb / r['pull_s']:>10.1f}"
        )
    write_json(
        args.out,
        {
            "steps": summary.steps,
            "episodes": summary.episodes,
            "dataset_bytes": total_bytes,
            "files": files,
            "cache_objects": objects,
            "write_s": write_s,
            "dvc_add_s": add_s,
            "remotes": {
                name: {**r, "push_MBps": mb / r["push_s"], "pull_MBps": mb / r["pull_s"]}
                for name, r in runs.items()
            },
            "cpu_count": os.cpu_count(),
        },
    )


if __name__ == "__main__":
    main()
