"""Issue 4: our algorithms against d3rlpy's on the same transitions, budget, seeds and evaluation.

For each algorithm and seed, both sides train for `--steps` gradient steps (batch 256, 256x256
networks, two critics, the same learning rate) on the same transitions with the same observation
normalisation; both greedy policies are then rolled out by the same code (our `evaluate_policy`,
gymnasium 1.4, Hopper-v5) on the same episode seeds and scored against the same D4RL reference
returns. d3rlpy trains in its own venv (d3rlpy_env.py) and hands back a TorchScript policy.

    python -m benchmarks.compare_d3rlpy --steps 5000 --seeds 0 1 2 --algos bc td3_bc
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import (
    RESULTS,
    export_for_d3rlpy,
    machine,
    mean_std,
    medium_dataset,
    our_algorithm,
    run_d3rlpy,
)
from core.atomic import write_json
from offline_rl.algos.registry import ALGORITHMS
from offline_rl.buffer import ReplayBuffer
from offline_rl.evaluation import AgentPolicy, evaluate_policy
from transitions.loader import Transitions, load_transitions

D3RLPY_ALGOS = ("bc", "td3_bc", "iql", "cql")
EVAL_SEED = 1_000_000  # the pipeline's evaluation seed offset: episodes no training run saw


def normalised_score(policy: AgentPolicy, data: Transitions, episodes: int) -> float:
    (result,) = evaluate_policy(
        data.meta.env_id,
        policy,
        episodes,
        seed=EVAL_SEED,
        ref_min_score=data.meta.ref_min_score,
        ref_max_score=data.meta.ref_max_score,
    )
    scores = result.normalized_scores()
    if scores is None:
        raise ValueError("the transitions file has no reference scores; cannot normalise")
    return float(scores.mean())


def train_ours(name: str, data: Transitions, steps: int, seed: int, lr: float) -> tuple[Any, float]:
    algo = our_algorithm(name, data.meta.obs_dim, data.meta.act_dim, lr, seed)
    buffer = ReplayBuffer.from_transitions(data, seeds=[seed])
    start = time.perf_counter()
    for _ in range(steps):
        algo.update(buffer.sample(256))
    return algo, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transitions", type=Path, help="a transitions file (default: generate)")
    parser.add_argument("--dataset-steps", type=int, default=50_000, help="size of generated data")
    parser.add_argument("--algos", nargs="+", default=["bc", "td3_bc"], choices=D3RLPY_ALGOS)
    parser.add_argument("--steps", type=int, default=5_000, help="gradient steps per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--lr", type=float, default=3e-4, help="the papers' learning rate")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=RESULTS / "work")
    parser.add_argument("--out", type=Path, default=RESULTS / "compare_d3rlpy.json")
    args = parser.parse_args()
    missing = [a for a in args.algos if a not in ALGORITHMS]
    if missing:
        parser.error(f"not registered in offline_rl.algos: {missing}")

    torch.set_num_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    transitions = args.transitions or medium_dataset(args.workdir, args.dataset_steps)[1]
    data = load_transitions(transitions)
    exported = export_for_d3rlpy(transitions, args.workdir / f"{transitions.stem}.d3rlpy.npz")

    runs: list[dict[str, Any]] = []
    for name in args.algos:
        for seed in args.seeds:
            algo, ours_s = train_ours(name, data, args.steps, seed, args.lr)
            ours = normalised_score(
                AgentPolicy(algo.act, data.meta, torch.device("cpu")),
                data,
                args.eval_episodes,
            )
            out = args.workdir / f"d3rlpy-{name}-{seed}.json"
            result = run_d3rlpy(
                "train", exported, name, out, steps=args.steps, seed=seed, lr=args.lr,
                threads=args.threads,
            )  # fmt: skip
            d3_policy = torch.jit.load(result["policy"])
            theirs = normalised_score(
                AgentPolicy(d3_policy, data.meta, torch.device("cpu")),
                data,
                args.eval_episodes,
            )
            run = {"algo": name, "seed": seed, "ours": ours, "d3rlpy": theirs}
            run |= {"ours_train_s": ours_s, "d3rlpy_train_s": result["train_seconds"]}
            print(run, flush=True)
            runs.append(run)
            write_report(args, transitions, len(data), runs)  # partial results survive a kill
    rows = write_report(args, transitions, len(data), runs)
    print(f"\nnormalised score (x100), {args.steps} steps, seeds {args.seeds}, {transitions}")
    print(f"{'algo':8} {'ours':>16} {'d3rlpy 2.8.1':>16}  ours >= d3rlpy within spread")
    for row in rows:
        print(
            f"{row['algo']:8} {row['ours_mean']:8.1f} ± {row['ours_std']:5.1f} "
            f"{row['d3rlpy_mean']:8.1f} ± {row['d3rlpy_std']:5.1f}  {row['ours_at_least_as_good']}"
        )


def write_report(
    args: argparse.Namespace, transitions: Path, size: int, runs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    rows = []
    for name in dict.fromkeys(r["algo"] for r in runs):
        ours_m, ours_s = mean_std([r["ours"] for r in runs if r["algo"] == name])
        d3_m, d3_s = mean_std([r["d3rlpy"] for r in runs if r["algo"] == name])
        rows.append(
            {
                "algo": name,
                "seeds": [r["seed"] for r in runs if r["algo"] == name],
                "ours_mean": ours_m,
                "ours_std": ours_s,
                "d3rlpy_mean": d3_m,
                "d3rlpy_std": d3_s,
                # "at least as good within the seeds' spread": ours + its std >= theirs - its std
                "ours_at_least_as_good": ours_m + ours_s >= d3_m - d3_s,
            }
        )
    write_json(
        args.out,
        {
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
            | {"transitions": str(transitions), "dataset_size": size},
            "machine": machine(),
            "rows": rows,
            "runs": runs,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        },
    )
    return rows


if __name__ == "__main__":
    main()
