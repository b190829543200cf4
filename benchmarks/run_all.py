"""`make bench`: every benchmark with small defaults, one after the other (tables + JSON)."""

from __future__ import annotations

import subprocess
import sys

SMALL_RUNS = (
    ["benchmarks.speed", "--steps", "300", "--warmup", "30", "--rounds", "3"],
    ["benchmarks.profile_update", "--algo", "td3_bc", "--steps", "100"],
    ["benchmarks.compare_d3rlpy", "--steps", "2000", "--seeds", "0", "1", "2"],
    ["benchmarks.preprocess_throughput", "--transitions", "2000000"],
    # The issue-25 run is 100M rows (docs/performance.md); small, both storages share one file.
    [
        "benchmarks.disk_training",
        "--rows",
        "2000000",
        "--memory-rows",
        "2000000",
        "--limit-gb",
        "1",
    ],
)


def main() -> None:
    for command in SMALL_RUNS:
        print(f"\n$ python -m {' '.join(command)}", flush=True)
        subprocess.run([sys.executable, "-m", *command], check=True)


if __name__ == "__main__":
    main()
