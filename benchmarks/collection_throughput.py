"""Collection throughput (env steps/s, SAC policy in the loop, dataset written) of our collector
with 1 and 2 workers against a plain `minari.DataCollector` loop, on the same policy and env.

    PYTHONPATH=. python benchmarks/collection_throughput.py [--steps 20000]

minari 0.5.4's DataCollector needs jax (its EpisodeBuffer maps steps with jax.tree_util), which
the project does not depend on; this script runs that side in benchmarks/.venv-minari, a venv
that sees the project's packages and adds jax (created on first use, git-ignored).
Prints a table and writes benchmarks/results/collection.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
POLICY = REPO / "tests/fixtures/hopper_sac_behavior.pt"
ENV_ID = "Hopper-v5"
MINARI_VENV = HERE / ".venv-minari"
JAX_PIN = "jax==0.10.2"


def ours(steps: int, workers: int, num_envs: int, shard_steps: int) -> float:
    """Steps/s of plan -> shards (process pool) -> Minari dataset, as the collect stage runs it."""
    from datagen.collection.backends import BackendConfig, collect_shards
    from datagen.collection.minari_writer import DatasetInfo, write_dataset
    from datagen.collection.reference import d4rl_reference
    from datagen.collection.shards import PolicySpec, plan_shards, unpack

    spec = PolicySpec.from_checkpoint(POLICY, deterministic=False)
    jobs = plan_shards(ENV_ID, spec, steps, 0, shard_steps, num_envs)
    with tempfile.TemporaryDirectory() as tmp:
        info = DatasetInfo("bench/ours-v0", ENV_ID, "SAC", "benchmark", "benchmark")
        backend = BackendConfig("process", workers)
        started = time.perf_counter()
        episodes = (
            e
            for arrays in collect_shards(jobs, Path(tmp) / "shards", backend)
            for e in unpack(arrays)
        )
        summary = write_dataset(Path(tmp), info, episodes, d4rl_reference(ENV_ID))
        elapsed = time.perf_counter() - started
    assert summary.steps == steps
    return steps / elapsed


def datacollector(steps: int) -> float:
    """Steps/s of the loop Minari's docs show: DataCollector-wrapped env, one action per step."""
    import gymnasium as gym
    import minari
    import numpy as np

    from datagen.behavior.policies import SACPolicy

    torch.set_num_threads(1)
    torch.manual_seed(0)
    policy = SACPolicy(POLICY, deterministic=False)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MINARI_DATASETS_PATH"] = tmp
        env = minari.DataCollector(gym.make(ENV_ID))
        started = time.perf_counter()
        obs, _ = env.reset(seed=0)
        episode = 0
        for _ in range(steps):
            action = policy(np.asarray(obs, dtype=np.float32)[None])[0]
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                episode += 1
                obs, _ = env.reset(seed=episode)
        env.create_dataset(dataset_id="bench/datacollector-v0", algorithm_name="SAC")
        elapsed = time.perf_counter() - started
    return steps / elapsed


def minari_python() -> Path:
    """benchmarks/.venv-minari/bin/python: the project's packages plus jax."""
    python = MINARI_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(MINARI_VENV)], check=True)
        site = next(Path(p) for p in sys.path if p.endswith("site-packages"))
        (MINARI_VENV / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
         / "site-packages" / "project_venv.pth").write_text(f"{site}\n")  # fmt: skip
        subprocess.run([str(python), "-m", "pip", "install", "-q", JAX_PIN], check=True)
    return python


def datacollector_in_venv(steps: int) -> float:
    """`datacollector(steps)` run in benchmarks/.venv-minari (Minari's collector needs jax)."""
    out = subprocess.run(
        [str(minari_python()), __file__, "--datacollector-only", "--steps", str(steps)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1])["steps_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--shard-steps", type=int, default=5_000)
    parser.add_argument("--datacollector-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.datacollector_only:
        print(json.dumps({"steps_per_s": datacollector(args.steps)}))
        return
    load_at_start = os.getloadavg()[0]  # other jobs on the machine share its cores
    baseline = datacollector_in_venv(args.steps)
    rows = [("minari.DataCollector loop (1 env, 1 process)", baseline)]
    for workers in (1, 2):
        rate = ours(args.steps, workers, args.num_envs, args.shard_steps)
        rows.append((f"ours ({args.num_envs} vector envs x {workers} worker(s))", rate))
    print(f"\n{ENV_ID}, SAC policy in the loop, {args.steps} steps, dataset written")
    print(f"load average at start: {load_at_start:.1f} on {os.cpu_count()} CPUs\n")
    print(f"{'collector':<48} {'steps/s':>10} {'speed-up':>9}")
    for name, rate in rows:
        print(f"{name:<48} {rate:>10.0f} {rate / baseline:>8.2f}x")
    results = {
        "env": ENV_ID,
        "steps": args.steps,
        "num_envs": args.num_envs,
        "shard_steps": args.shard_steps,
        "policy": str(POLICY.relative_to(REPO)),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_start": load_at_start,
        },
        "steps_per_s": {name: rate for name, rate in rows},
        "speedup_vs_datacollector": {name: rate / baseline for name, rate in rows},
    }
    path = HERE / "results" / "collection.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
