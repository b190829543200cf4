"""The learning library's config models that params.yaml sections are built from: the training
loop (`train`, with the stage's own keys in pipelines/params.py) and tracking (`wandb`), torch-free
(the algorithms' own are in algos/config.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.config import StrictModel


class LoopConfig(StrictModel):
    steps: int = Field(default=10_000, ge=1)
    batch_size: int = Field(default=256, ge=1)
    log_interval: int = Field(default=500, ge=1)
    eval_interval: int = Field(default=5_000, ge=1)
    eval_episodes: int = Field(default=5, ge=1)
    checkpoint_interval: int = Field(default=2_500, ge=1)
    profile: bool = False  # torch.profiler trace of a few steps (slower: syncs every phase)
    # Speed switches that keep the maths (offline_rl/speed.py); docs/performance.md has figures.
    compile: bool = False
    precision: Literal["fp32", "bf16"] = "fp32"
    cuda_graph: bool = True  # on a CUDA device: replay the training step as CUDA graphs
    # On CPU, denormal floats (below 1.2e-38) read as zero while training: Adam's second moments
    # sink there and cost a slow path (1.2x on TD3+BC and IQL); the last bits change.
    flush_denormals: bool = False


class WandbConfig(StrictModel):
    project: str = Field(default="offline-rl-pipeline", min_length=1)
    entity: str | None = None
    # "auto": online when wandb has credentials, offline otherwise (resolved by the stage entry).
    mode: Literal["auto", "online", "offline", "disabled"] = "auto"
    tags: tuple[str, ...] = ()
    log_video: bool = True
