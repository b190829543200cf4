"""Runs inside d3rlpy's venv (see d3rlpy_env.py); imports nothing from the project.

Given an exported dataset (.npz, observations already normalised, actions in [-1, 1]), it either
trains one d3rlpy algorithm and saves its greedy policy as TorchScript (`train`), or times its
gradient steps and counts their FLOPs (`speed`). Results go to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import d3rlpy
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

HIDDEN = [256, 256]
DT_CONTEXT = 20


def make_algo(name: str, batch_size: int, lr: float, device: str = "cpu:0") -> Any:
    """d3rlpy's algorithm with our sizes: 256x256 MLPs, batch 256, two critics, our learning rate."""
    encoder = d3rlpy.models.VectorEncoderFactory(hidden_units=HIDDEN)
    common: dict[str, Any] = {"batch_size": batch_size}
    if name == "bc":
        config: Any = d3rlpy.algos.BCConfig(
            learning_rate=lr, encoder_factory=encoder, policy_type="deterministic", **common
        )
    elif name == "td3_bc":
        config = d3rlpy.algos.TD3PlusBCConfig(
            actor_learning_rate=lr,
            critic_learning_rate=lr,
            actor_encoder_factory=encoder,
            critic_encoder_factory=encoder,
            n_critics=2,
            **common,
        )
    elif name == "iql":
        config = d3rlpy.algos.IQLConfig(
            actor_learning_rate=lr,
            critic_learning_rate=lr,
            actor_encoder_factory=encoder,
            critic_encoder_factory=encoder,
            value_encoder_factory=encoder,
            n_critics=2,
            expectile=0.7,
            weight_temp=3.0,
            **common,
        )
    elif name == "cql":
        # CORL's Hopper settings where d3rlpy's defaults differ: fixed alpha 10, actor lr 3e-5.
        config = d3rlpy.algos.CQLConfig(
            actor_learning_rate=3e-5,
            critic_learning_rate=lr,
            actor_encoder_factory=encoder,
            critic_encoder_factory=encoder,
            n_critics=2,
            n_action_samples=10,
            conservative_weight=10.0,
            alpha_learning_rate=0.0,
            initial_alpha=1.0,
            **common,
        )
    elif name == "awac":
        config = d3rlpy.algos.AWACConfig(
            actor_learning_rate=lr,
            critic_learning_rate=lr,
            actor_encoder_factory=encoder,
            critic_encoder_factory=encoder,
            n_critics=2,
            **common,
        )
    elif name == "dt":
        # The paper's settings, as ours: context 20, 3 layers, 1 head, 128 wide (d3rlpy embeds
        # states with its encoder, here one 128-unit layer), GELU, dropout 0.1, AdamW (lr 1e-4,
        # weight decay 1e-4) warmed up over 10,000 steps, gradients clipped at 0.25.
        optim = d3rlpy.optimizers.AdamWFactory(
            weight_decay=1e-4,
            clip_grad_norm=0.25,
            lr_scheduler_factory=d3rlpy.optimizers.WarmupSchedulerFactory(warmup_steps=10_000),
        )
        config = d3rlpy.algos.DecisionTransformerConfig(
            batch_size=batch_size,
            learning_rate=1e-4,
            context_size=DT_CONTEXT,
            max_timestep=1000,
            num_heads=1,
            num_layers=3,
            encoder_factory=d3rlpy.models.VectorEncoderFactory(hidden_units=[128]),
            activation_type="gelu",
            optim_factory=optim,
        )
    else:
        raise SystemExit(f"d3rlpy worker: unknown algorithm {name!r}")
    return config.create(device=device)


def load_dataset(path: Path) -> Any:
    data = np.load(path)
    return d3rlpy.dataset.MDPDataset(
        observations=data["observations"],
        actions=data["actions"],
        rewards=data["rewards"],
        terminals=data["terminals"],
        timeouts=data["timeouts"],
        action_space=d3rlpy.constants.ActionSpace.CONTINUOUS,
    )


def speed(algo: Any, dataset: Any, batch_size: int, warmup: int, steps: int) -> dict[str, float]:
    """The loop `fit` runs (sample a batch, update), without its logging, timed after warm-up:
    batches of transitions, or of partial trajectories for the Decision Transformer."""
    if isinstance(algo, d3rlpy.algos.DecisionTransformer):

        def sample() -> Any:
            return dataset.sample_trajectory_batch(batch_size, length=DT_CONTEXT)
    else:

        def sample() -> Any:
            return dataset.sample_transition_batch(batch_size)

    for _ in range(warmup):
        algo.update(sample())
    synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        algo.update(sample())
    synchronize()
    elapsed = time.perf_counter() - start
    counted = 4  # an even number covers delayed actor updates (TD3+BC updates the actor every 2)
    with FlopCounterMode(display=False) as counter:
        for _ in range(counted):
            algo.update(sample())
    return {
        "steps_per_s": steps / elapsed,
        "seconds": elapsed,
        "flops_per_step": counter.get_total_flops() / counted,
    }


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("train", "speed"))
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--algo", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu:0", help="d3rlpy's device string, e.g. cuda:0")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    d3rlpy.seed(args.seed)
    dataset = load_dataset(args.data)
    algo = make_algo(args.algo, args.batch_size, args.lr, args.device)
    algo.build_with_dataset(dataset)
    result: dict[str, Any] = {"algo": args.algo, "d3rlpy": d3rlpy.__version__}
    if args.mode == "speed":
        result |= speed(algo, dataset, args.batch_size, args.warmup, args.steps)
    else:
        start = time.perf_counter()
        algo.fit(
            dataset,
            n_steps=args.steps,
            n_steps_per_epoch=args.steps,
            logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
            show_progress=False,
            save_interval=10**9,
        )
        result["train_seconds"] = time.perf_counter() - start
        policy = args.out.with_suffix(".policy.pt")
        algo.save_policy(str(policy))
        result["policy"] = str(policy)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
