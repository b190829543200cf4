"""`make bench`: every benchmark with small defaults, one after the other (tables + JSON)."""

from __future__ import annotations

import subprocess
import sys

SMALL_RUNS = (
    ["benchmarks.speed", "--steps", "300", "--warmup", "30", "--rounds", "3"],
    ["benchmarks.profile_update", "--algo", "td3_bc", "--steps", "100"],
    ["benchmarks.compare_d3rlpy", "--steps", "2000", "--seeds", "0", "1", "2"],
    ["benchmarks.preprocess_throughput", "--transitions", "2000000"],
)


def main() -> None:
    for command in SMALL_RUNS:
        print(f"\n$ python -m {' '.join(command)}", flush=True)
        subprocess.run([sys.executable, "-m", *command], check=True)


if __name__ == "__main__":
    main()
