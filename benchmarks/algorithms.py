"""Our algorithms as every benchmark builds them; imports nothing heavier than torch, so that a
GPU machine without the environments can run the speed benchmark."""

from __future__ import annotations

import torch

from offline_rl.algos.base import Algorithm
from offline_rl.algos.registry import ALGORITHMS, make_algorithm

# d3rlpy's default and what its worker is given: both sides train the same network sizes.
HIDDEN = (256, 256)


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
    HIDDEN layers (CORL's CQL, AWAC and ReBRAC default to three, d3rlpy to two), training
    `seeds` seeds (seed, seed + 1, ...) at once."""
    _, config_model = ALGORITHMS[name]
    config = config_model.model_validate({"hidden": HIDDEN}).with_default_lr(lr)
    training_seeds = list(range(seed, seed + seeds))
    return make_algorithm(name, obs_dim, act_dim, config, torch.device(device), training_seeds)
