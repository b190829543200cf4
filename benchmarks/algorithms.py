"""Our algorithms as every benchmark builds them; imports nothing heavier than torch, so that a
GPU machine without the environments can run the speed benchmark."""

from __future__ import annotations

import torch

from offline_rl.algos.base import Algorithm
from offline_rl.algos.registry import ALGORITHMS, make_algorithm
from offline_rl.buffer import ReplayBuffer
from offline_rl.windows import WindowBuffer
from transitions.loader import Transitions

# d3rlpy's default and what its worker is given: both sides train the same network sizes.
HIDDEN = (256, 256)
# Batch size per algorithm where it is not 256 (d3rlpy's and CORL's): the Decision Transformer
# paper's 64 windows of 20 steps.
BATCH_SIZES = {"dt": 64}


def batch_size(name: str) -> int:
    return BATCH_SIZES.get(name, 256)


def our_algorithm(
    name: str,
    obs_dim: int,
    act_dim: int,
    lr: float,
    seed: int,
    device: torch.device | str = "cpu",
    seeds: int = 1,
) -> Algorithm:
    """Our algorithm with its published defaults, `lr` wherever its config leaves it open, and
    HIDDEN layers for the MLP algorithms (CORL's CQL, AWAC and ReBRAC default to three, d3rlpy to two), training
    `seeds` seeds (seed, seed + 1, ...) at once."""
    _, config_model = ALGORITHMS[name]
    sizes = {"hidden": HIDDEN} if "hidden" in config_model.model_fields else {}  # not dt's
    config = config_model.model_validate(sizes).with_default_lr(lr)
    training_seeds = list(range(seed, seed + seeds))
    return make_algorithm(name, obs_dim, act_dim, config, torch.device(device), training_seeds)


def batches_for(algo: Algorithm, data: Transitions, seeds: int = 1) -> ReplayBuffer | WindowBuffer:
    """The algorithm's kind of batches over `data`: rows, or windows for a sequence model."""
    seed_list = list(range(seeds))
    context: int | None = getattr(algo, "context", None)
    if context is None:
        return ReplayBuffer.from_transitions(data, seeds=seed_list)
    return WindowBuffer(data, context, seed_list)
