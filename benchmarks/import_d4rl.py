"""Import of a D4RL-sized file: loopback download speed, conversion speed and peak memory.

    python -m benchmarks.import_d4rl                 # 1M rows, like D4RL's hopper-medium-v2
    python -m benchmarks.import_d4rl --rows 100000   # quick

Writes a D4RL-layout file of synthetic Hopper-shaped rows (episodes of uniform length in
[100, 1000]; 1000-step ones time out, shorter ones terminate; no next_observations, as in D4RL v2),
serves it from 127.0.0.1, and times `datagen.sources.http.download` (sha256 checked) and
`datagen.sources.d4rl.import_d4rl` separately. The conversion runs in its own subprocess so its
peak RSS (VmHWM: interpreter and imports included) is its own, not the file generator's or
the server's. Writes benchmarks/results/import_d4rl.json and prints a table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from benchmarks.memory import peak_rss_mb
from datagen.sources.d4rl import import_d4rl
from datagen.sources.http import RetryPolicy, download
from tests.datagen.d4rl_files import ServedFile, serve

RESULTS = Path(__file__).resolve().parent / "results" / "import_d4rl.json"


def write_file(path: Path, rows: int, seed: int = 0) -> int:
    """A D4RL-layout file without next_observations; returns the number of episodes."""
    rng = np.random.default_rng(seed)
    lengths: list[int] = []
    while sum(lengths) < rows:
        lengths.append(min(int(rng.integers(100, 1001)), rows - sum(lengths)))
    ends = np.cumsum(lengths) - 1
    terminals, timeouts = np.zeros(rows, dtype=bool), np.zeros(rows, dtype=bool)
    for end, length in zip(ends, lengths, strict=True):
        (timeouts if length == 1000 else terminals)[end] = True
    with h5py.File(path, "w") as f:
        f["observations"] = rng.normal(size=(rows, 11)).astype(np.float32)
        f["actions"] = rng.uniform(-1, 1, size=(rows, 3)).astype(np.float32)
        f["rewards"] = rng.normal(1.0, 0.5, size=rows).astype(np.float32)
        f["terminals"], f["timeouts"] = terminals, timeouts
    return len(lengths)


def convert(path: Path, root: Path) -> dict[str, float]:
    """Run in a fresh process: the import alone, its time and the process's peak RSS."""
    before_mb = peak_rss_mb()
    start = time.perf_counter()
    summary = import_d4rl(path, root, "d4rl/hopper/bench-v0", "Hopper-v5")
    return {
        "convert_s": time.perf_counter() - start,
        "episodes": float(summary["episodes"] or 0),
        "steps": float(summary["steps"] or 0),
        "rss_after_imports_mb": before_mb,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--convert", nargs=2, metavar=("FILE", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.convert:
        print(json.dumps(convert(Path(args.convert[0]), Path(args.convert[1]))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        episodes = write_file(work / "source.hdf5", args.rows)
        body = (work / "source.hdf5").read_bytes()
        digest = hashlib.sha256(body).hexdigest()
        with serve({"/d4rl.hdf5": ServedFile(body)}) as base:
            del body
            start = time.perf_counter()
            local = download(f"{base}/d4rl.hdf5", work / "got.hdf5", digest, RetryPolicy())
            download_s = time.perf_counter() - start
        worker = [sys.executable, "-m", "benchmarks.import_d4rl", "--convert"]
        out = subprocess.run(
            [*worker, str(local), str(work / "root")], capture_output=True, text=True, check=True
        )
        converted = json.loads(out.stdout.strip().splitlines()[-1])
        size_mb = local.stat().st_size / 2**20
    result = {
        "rows": args.rows,
        "episodes_in_file": episodes,
        "episodes_imported": int(converted["episodes"]),
        "steps_imported": int(converted["steps"]),
        "file_mb": round(size_mb, 1),
        "download_s": round(download_s, 2),
        "download_mb_per_s": round(size_mb / download_s, 1),
        "convert_s": round(converted["convert_s"], 2),
        "convert_rows_per_s": round(args.rows / converted["convert_s"]),
        "convert_rss_after_imports_mb": round(converted["rss_after_imports_mb"]),
        "convert_peak_rss_mb": round(converted["peak_rss_mb"]),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
