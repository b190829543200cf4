"""What running independent parts of an update side by side could gain on this CPU: an upper
bound for a CPU counterpart of the GPU's side-stream branches (offline_rl/side_stream.py).

On a GPU, independent parts of a step (IQL's three steps, TD3+BC's TD target) run concurrently on
a second stream. On CPU the same would mean a second Python thread running a branch while the
main one runs the rest, each with one intra-op thread instead of both splitting every operation.
No split of one update can do better than two whole, independent updates running that way, so
this times exactly that, against one update stream on the main thread as training runs it
(`--threads` intra-op threads):

    python -m benchmarks.cpu_concurrency_bound --transitions medium-50000.h5 --algos td3_bc iql

`bound` is the two streams' summed steps/s over the main thread's: what a perfectly balanced
two-branch update could at most reach relative to today's. Rounds alternate the two setups, in
one process, so that both see the same background load; medians are reported.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.algorithms import our_algorithm
from benchmarks.common import medium_dataset
from core.atomic import write_json
from offline_rl.buffer import ReplayBuffer
from offline_rl.speed import accelerate
from transitions.loader import Transitions, load_transitions

BATCH = 256
RESULTS = Path(__file__).parent / "results"


def update_stream(name: str, data: Transitions, seed: int) -> Callable[[int], None]:
    """A function running `n` training steps of a fresh algorithm on its own sampler."""
    algo = our_algorithm(name, data.meta.obs_dim, data.meta.act_dim, 3e-4, seed=seed)
    buffer = ReplayBuffer.from_transitions(data, seeds=[seed])
    update = accelerate(algo)

    def run(n: int) -> None:
        for _ in range(n):
            update(buffer.sample(BATCH))

    return run


def steps_per_s(streams: list[Callable[[int], None]], steps: int) -> float:
    """Summed steps/s of the streams, each on its own Python thread (the main one if alone)."""
    if len(streams) == 1:
        start = time.perf_counter()
        streams[0](steps)
        return steps / (time.perf_counter() - start)
    threads = [threading.Thread(target=stream, args=(steps,)) for stream in streams]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(streams) * steps / (time.perf_counter() - start)


def measure(name: str, data: Transitions, args: argparse.Namespace) -> dict[str, Any]:
    main_stream = update_stream(name, data, seed=0)
    pair = [update_stream(name, data, seed=1), update_stream(name, data, seed=2)]
    setups: dict[str, tuple[int, list[Callable[[int], None]]]] = {
        f"main thread, {args.threads} intra-op threads": (args.threads, [main_stream]),
        "main thread, 1 intra-op thread": (1, [main_stream]),
        "two independent streams, 1 intra-op thread each": (1, pair),
    }
    rounds: dict[str, list[float]] = {label: [] for label in setups}
    threads_before = torch.get_num_threads()
    try:
        for round_ in range(args.rounds + 1):  # the first round warms every stream up
            for label, (threads, streams) in setups.items():
                torch.set_num_threads(threads)
                rate = steps_per_s(streams, args.warmup if round_ == 0 else args.steps)
                if round_ > 0:
                    rounds[label].append(rate)
    finally:
        torch.set_num_threads(threads_before)
    medians = {label: statistics.median(rates) for label, rates in rounds.items()}
    training, *_, two = medians.values()
    return {"algo": name, "steps_per_s": medians, "rounds": rounds, "bound": two / training}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transitions", type=Path, help="a transitions file (default: generate)")
    parser.add_argument("--dataset-steps", type=int, default=50_000)
    parser.add_argument("--algos", nargs="+", default=["bc", "td3_bc", "iql"])
    parser.add_argument("--steps", type=int, default=300, help="timed steps per stream and round")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=RESULTS / "work")
    parser.add_argument("--out", type=Path, default=RESULTS / "cpu_concurrency_bound.json")
    args = parser.parse_args()
    transitions = args.transitions or medium_dataset(args.workdir, args.dataset_steps)[1]
    data = load_transitions(transitions)
    rows = []
    for name in args.algos:
        row = measure(name, data, args)
        rates = ", ".join(f"{label} {rate:.0f}" for label, rate in row["steps_per_s"].items())
        print(f"{name}: {rates} steps/s; bound {row['bound']:.2f}x", flush=True)
        rows.append(row)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    write_json(
        args.out, {"date": stamp, "torch": torch.__version__, "settings": settings, "rows": rows}
    )


if __name__ == "__main__":
    main()
