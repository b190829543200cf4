"""Our algorithms as every benchmark builds them; imports nothing heavier than torch, so that a
GPU machine without the environments can run the speed benchmark."""

from __future__ import annotations

import torch

from offline_rl.algos import ALGORITHMS, Algorithm, make_algorithm

# d3rlpy's default and what its worker is given: both sides train the same network sizes.
HIDDEN = (256, 256)


def our_algorithm(
    name: str,
    obs_dim: int,
    act_dim: int,
    lr: float,
    seed: int,
    device: torch.device | str = "cpu",
) -> Algorithm:
    """Our algorithm with its published defaults, `lr` wherever its config leaves it open, and
    HIDDEN layers (CORL's CQL, AWAC and ReBRAC default to three, d3rlpy to two)."""
    torch.manual_seed(seed)
    _, config_model = ALGORITHMS[name]
    config = config_model.model_validate({"hidden": HIDDEN}).with_default_lr(lr)
    return make_algorithm(name, obs_dim, act_dim, config, torch.device(device))
