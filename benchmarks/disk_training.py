"""TD3+BC trained from a transitions file larger than memory (`train.storage: disk`), against the
same training from memory on a file that fits (issue 25).

    python -m benchmarks.disk_training                       # 100M rows (~11.9 GB file)
    python -m benchmarks.disk_training --rows 2000000 --memory-rows 2000000 --limit-gb 1  # quick

Writes (once, cached under benchmarks/data/disk_training/) a synthetic Hopper-shaped transitions
file of `--rows` rows (observations 11, actions 3, 1000-step episodes) straight through the
transitions writer, contiguous as preprocess writes it, and one of `--memory-rows` rows for the
run from memory. Each run is a fresh process that builds TD3+BC (the default config, one seed,
batch 256) and times `--steps` gradient steps, `update(buffer.sample(256))` as the training loop
runs them, after `--warmup` untimed ones. Rounds alternate disk and memory, so both see the same
background load; the medians give the ratio disk / memory (target: at least 0.8).

The memory limit on the disk run (`--limit-by cgroup`, the default): with
`systemd-run --scope -p MemoryMax=` where systemd runs, else in a memory cgroup of its own where
the cgroup file system lets this process make one (v2 memory.max, v1 memory.limit_in_bytes; as
root on this project's VMs). A cgroup counts the page cache the child faults in, so rows beyond
the limit are read from the device again: training from a file truly larger than the memory it
may use. Where neither can be had, or with `--limit-by rss`: a checked ceiling, the parent reads
the child's /proc/<pid>/status every 20 ms and kills it when its private memory (RssAnon: what
the process itself holds) passes `--limit-gb`. The mapped
file's pages the child touched are reported apart (RssFile): they are the kernel's page cache,
shared and dropped under memory pressure, not the process's own memory. Before each disk run the
file is read through once (`--cache warm`, the default: the page cache then holds it where the
machine's memory, not the process's, is larger than the file, e.g. a GPU run whose device memory
is not), or its cached pages are dropped (`--cache cold`, posix_fadvise: the run starts reading
rows from the device, as every run does when the file is larger than the machine's memory), or
left as they are (`--cache as-is`). Writes benchmarks/results/disk_training.json (or --out) and
prints a line per round.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data" / "disk_training"
RESULTS = ROOT / "results" / "disk_training.json"
OBS_DIM, ACT_DIM, EPISODE_STEPS = 11, 3, 1000
WRITE_ROWS = 1 << 20  # rows generated and written at a time: bounds the writer's memory
SAMPLE_S = 0.02  # how often the parent reads the child's memory
BATCH_SIZE = 256


def write_synthetic(path: Path, rows: int, seed: int = 0) -> None:
    """`rows` random rows of Hopper's shapes, in episodes of EPISODE_STEPS (the last may be
    shorter) that end in a timeout; contiguous arrays, as preprocess writes an uncompressed file."""
    from transitions.spaces import ActionLayout, ObservationLayout
    from transitions.writer import Header, open_writer

    observations = ObservationLayout(OBS_DIM)
    actions = ActionLayout(ACT_DIM, low=(-1.0,) * ACT_DIM, high=(1.0,) * ACT_DIM)
    rng = np.random.default_rng(seed)
    episodes = -(-rows // EPISODE_STEPS)
    returns = np.zeros(episodes)
    with open_writer(path, observations, actions, WRITE_ROWS, None, rows=rows) as writer:
        for start in range(0, rows, WRITE_ROWS):
            n = min(WRITE_ROWS, rows - start)
            index = np.arange(start, start + n)
            episode_ids = index // EPISODE_STEPS
            rewards = rng.standard_normal(n, dtype=np.float32)
            returns += np.bincount(episode_ids, weights=rewards, minlength=episodes)
            writer.add(
                {
                    "observations": rng.standard_normal((n, OBS_DIM), dtype=np.float32),
                    "actions": rng.uniform(-1, 1, (n, ACT_DIM)).astype(np.float32),
                    "rewards": rewards,
                    "next_observations": rng.standard_normal((n, OBS_DIM), dtype=np.float32),
                    "terminals": np.zeros(n, bool),
                    "timeouts": (index % EPISODE_STEPS == EPISODE_STEPS - 1) | (index == rows - 1),
                    "episode_ids": episode_ids,
                    "returns_to_go": np.zeros(n, np.float32),
                    "validation": np.zeros(n, bool),
                }
            )
        writer.flush()
        writer.write_header(
            Header(
                env_id="Hopper-v5",
                dataset_ids=["synthetic"],
                ref_min_score=None,
                ref_max_score=None,
                ref_score_source=None,
                actions=actions,
                observations=observations,
                normalize_observations=True,
                reward_scale=1.0,
                reward_shift=0.0,
                return_to_go_discount=1.0,
                validation_fraction=0.0,
                split_seed=seed,
                num_episodes=episodes,
                num_validation_episodes=0,
                returns=returns,
            )
        )


def dataset(rows: int) -> Path:
    """The cached file of `rows` rows, written when missing."""
    from transitions.metadata import TransitionsFileError, read_meta

    path = DATA / f"hopper-synthetic-{rows}.h5"
    try:
        if read_meta(path).size == rows:
            return path
    except TransitionsFileError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    write_synthetic(path, rows)
    print(f"wrote {path} ({rows:,} rows) in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def child(storage: str, path: Path, steps: int, warmup: int) -> dict[str, Any]:
    """One run: build TD3+BC and the sampler in `storage`, time `steps` gradient steps."""
    import torch

    from benchmarks.memory import peak_rss_mb
    from offline_rl.algos.config import TD3BCConfig
    from offline_rl.algos.registry import make_algorithm
    from offline_rl.storage import open_buffer
    from transitions.metadata import read_meta

    device = torch.device("cpu")
    meta = read_meta(path)
    started = time.perf_counter()
    buffer = open_buffer(path, "disk" if storage == "disk" else "memory", device, (0,))
    setup_s = time.perf_counter() - started
    config = TD3BCConfig().with_default_lr(3e-4)
    algo = make_algorithm("td3_bc", meta.obs_dim, meta.act_dim, config, device, (0,))
    for _ in range(warmup):
        algo.update(buffer.sample(BATCH_SIZE))
    started = time.perf_counter()
    for _ in range(steps):
        algo.update(buffer.sample(BATCH_SIZE))
    elapsed = time.perf_counter() - started
    return {
        "storage": storage,
        "rows": meta.size,
        "steps": steps,
        "steps_per_s": steps / elapsed,
        "setup_s": setup_s,
        "peak_rss_mb": peak_rss_mb(),
        "threads": torch.get_num_threads(),
    }


def memory_of(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon and RssFile of a process, in MB (empty once it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    fields = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def systemd_scope(limit: int) -> list[str] | None:
    """The command prefix that runs a child under a MemoryMax cgroup, or None where systemd cannot
    (no systemd as init, as in containers and this project's VMs)."""
    if shutil.which("systemd-run") is None:
        return None
    prefix = ["systemd-run", "--scope", "--quiet", "-p", f"MemoryMax={limit}"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True)
    return prefix if probe.returncode == 0 else None


@dataclass(frozen=True)
class MemoryCgroup:
    """A memory cgroup made for the disk run, where systemd cannot make one but the cgroup file
    system lets this process (cgroup v2's memory.max, v1's memory.limit_in_bytes). Its limit
    counts the page cache the child faults in, so rows beyond it are read from the device again."""

    path: Path
    peak_file: str

    @staticmethod
    def make(limit: int) -> MemoryCgroup | None:
        kinds = (
            (Path("/sys/fs/cgroup"), "memory.max", "memory.peak"),
            (Path("/sys/fs/cgroup/unified"), "memory.max", "memory.peak"),
            (Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes", "memory.max_usage_in_bytes"),
        )
        for root, limit_file, peak_file in kinds:
            group = root / f"disk-training-{os.getpid()}"
            try:
                group.mkdir()
            except OSError:
                continue
            # The kernel fills a new cgroup with its control files; a folder without them is not
            # one (e.g. /sys/fs/cgroup itself a tmpfs holding v1 hierarchies).
            if not (group / limit_file).is_file():
                group.rmdir()
                continue
            try:
                (group / limit_file).write_text(str(limit))
                return MemoryCgroup(group, peak_file)
            except OSError:
                group.rmdir()
        return None

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def peak_mb(self) -> float:
        return int((self.path / self.peak_file).read_text()) / 2**20

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


def drop_cached_pages(path: Path) -> None:
    """Evict the file's clean pages from the page cache (this file only)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_through(path: Path, block: int = 1 << 26) -> None:
    """Read the file once, sequentially, so that the page cache holds what memory allows."""
    buffer = bytearray(block)
    with path.open("rb", buffering=0) as file:
        while file.readinto(buffer):
            pass


def prepare_cache(path: Path, cache: str) -> None:
    if cache == "cold":
        drop_cached_pages(path)
    elif cache == "warm":
        read_through(path)


def run_child(
    storage: str,
    path: Path,
    args: argparse.Namespace,
    limit: int | None,
    scope: list[str] | None,
    cgroup: MemoryCgroup | None = None,
) -> dict[str, Any]:
    """Run one child, sampling its memory; with `limit` (bytes), under the systemd scope or in
    the memory cgroup when there is one, else killed when its RssAnon passes the limit."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.disk_training",
        "--child",
        storage,
        "--transitions",
        str(path),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
    ]
    if limit is not None and scope is not None:
        command = [*scope, *command]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT.parent
    )
    limited = limit is not None and (scope is not None or cgroup is not None)
    if limit is not None and cgroup is not None:
        cgroup.add(process.pid)  # before it imports torch or maps the file
    peaks = {"VmRSS": 0.0, "RssAnon": 0.0, "RssFile": 0.0}
    exceeded = threading.Event()

    def watch() -> None:
        while process.poll() is None:
            for key, value in memory_of(process.pid).items():
                peaks[key] = max(peaks[key], value)
            if limit is not None and not limited and peaks["RssAnon"] * 2**20 > limit:
                exceeded.set()
                process.kill()
            time.sleep(SAMPLE_S)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        stdout, stderr = process.communicate()
    except BaseException:  # interrupted (SIGTERM, Ctrl-C): the child goes too
        process.kill()
        process.wait()
        raise
    watcher.join()
    if exceeded.is_set():
        raise SystemExit(f"{storage} run passed the {limit} byte ceiling: {peaks}")
    if process.returncode != 0:
        raise SystemExit(f"{storage} run failed ({process.returncode}):\n{stderr[-3000:]}")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result |= {f"sampled_peak_{key}_mb": value for key, value in peaks.items()}
    if limit is not None and cgroup is not None:
        result["cgroup_peak_mb"] = cgroup.peak_mb()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000_000, help="rows of the disk run's file")
    parser.add_argument(
        "--memory-rows", type=int, default=10_000_000, help="rows of the memory run's file"
    )
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--limit-gb", type=float, default=2.0, help="memory limit of the disk run (GB)"
    )
    parser.add_argument(
        "--cache",
        choices=("warm", "cold", "as-is"),
        default="warm",
        help="before each disk run: read the file through (warm), drop its cached pages (cold)",
    )
    parser.add_argument(
        "--limit-by",
        choices=("cgroup", "rss"),
        default="cgroup",
        help="cgroup: systemd's MemoryMax or a memory cgroup of our own, page cache counted "
        "(else the RSS ceiling); rss: the checked RssAnon ceiling only",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", choices=("disk", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--transitions", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.transitions, args.steps, args.warmup)))
        return
    # A SIGTERM unwinds like Ctrl-C: the running child is killed and the cgroup removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    load_before = os.getloadavg()
    disk_file, memory_file = dataset(args.rows), dataset(args.memory_rows)
    limit = int(args.limit_gb * 1e9)
    file_bytes = disk_file.stat().st_size
    by_cgroup = args.limit_by == "cgroup"
    scope = systemd_scope(limit) if by_cgroup else None
    cgroup = MemoryCgroup.make(limit) if by_cgroup and scope is None else None
    if scope:
        limit_kind = f"systemd-run --scope -p MemoryMax={limit}"
    elif cgroup:
        limit_kind = f"memory cgroup {cgroup.path} limited to {limit} bytes, page cache counted"
    else:
        limit_kind = f"RssAnon ceiling of {limit} bytes, sampled every {SAMPLE_S * 1000:.0f} ms"
    print(f"disk file {file_bytes / 1e9:.2f} GB, limit {args.limit_gb} GB: {limit_kind}")
    rounds = []
    try:
        for number in range(args.rounds):
            prepare_cache(disk_file, args.cache)
            disk = run_child("disk", disk_file, args, limit, scope, cgroup)
            memory = run_child("memory", memory_file, args, None, None)
            rounds.append({"disk": disk, "memory": memory})
            in_cgroup = f", cgroup peak {disk['cgroup_peak_mb']:.0f} MB" if cgroup else ""
            print(
                f"round {number + 1}: disk {disk['steps_per_s']:.1f} steps/s "
                f"(RssAnon peak {disk['sampled_peak_RssAnon_mb']:.0f} MB, RssFile "
                f"{disk['sampled_peak_RssFile_mb']:.0f} MB{in_cgroup}), memory "
                f"{memory['steps_per_s']:.1f} steps/s (RSS peak {memory['peak_rss_mb']:.0f} MB)",
                flush=True,
            )
    finally:
        if cgroup:
            cgroup.remove()
    disk_rate = statistics.median(r["disk"]["steps_per_s"] for r in rounds)
    memory_rate = statistics.median(r["memory"]["steps_per_s"] for r in rounds)
    result = {
        "rows": args.rows,
        "file_bytes": file_bytes,
        "memory_rows": args.memory_rows,
        "memory_file_bytes": memory_file.stat().st_size,
        "limit_bytes": limit,
        "limit_kind": limit_kind,
        "cache": args.cache,
        "steps": args.steps,
        "warmup": args.warmup,
        "batch_size": BATCH_SIZE,
        "disk_steps_per_s": disk_rate,
        "memory_steps_per_s": memory_rate,
        "ratio": disk_rate / memory_rate,
        "target_ratio": 0.8,
        "disk_peak_rss_mb": max(r["disk"]["peak_rss_mb"] for r in rounds),
        "disk_peak_rss_anon_mb": max(r["disk"]["sampled_peak_RssAnon_mb"] for r in rounds),
        "disk_peak_rss_file_mb": max(r["disk"]["sampled_peak_RssFile_mb"] for r in rounds),
        "memory_peak_rss_mb": max(r["memory"]["peak_rss_mb"] for r in rounds),
        "disk_cgroup_peak_mb": max(r["disk"].get("cgroup_peak_mb", 0.0) for r in rounds),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "cpus": os.cpu_count(),
        "rounds": rounds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"disk {disk_rate:.1f} steps/s, memory {memory_rate:.1f}: ratio {result['ratio']:.2f} "
        f"(target 0.8); disk peak RSS {result['disk_peak_rss_mb']:.0f} MB (private "
        f"{result['disk_peak_rss_anon_mb']:.0f} MB) for a {file_bytes / 1e9:.2f} GB file -> "
        f"{args.out}"
    )


if __name__ == "__main__":
    main()
