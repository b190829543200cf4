"""Registry: `train.algo` in params.yaml names one of these; each entry is (class, config model)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from offline_rl.algos.awac import AWAC, AWACConfig
from offline_rl.algos.base import AlgoConfig, Algorithm
from offline_rl.algos.bc import BC, BCConfig
from offline_rl.algos.cql import CQL, CQLConfig
from offline_rl.algos.iql import IQL, IQLConfig
from offline_rl.algos.rebrac import ReBRAC, ReBRACConfig
from offline_rl.algos.td3_bc import TD3BC, TD3BCConfig
from offline_rl.seeds import INIT, load_networks_state, networks_state, stack_networks, stream_seed

ALGORITHMS: dict[str, tuple[type[Any], type[AlgoConfig]]] = {
    "bc": (BC, BCConfig),
    "td3_bc": (TD3BC, TD3BCConfig),
    "iql": (IQL, IQLConfig),
    "cql": (CQL, CQLConfig),
    "awac": (AWAC, AWACConfig),
    "rebrac": (ReBRAC, ReBRACConfig),
}

__all__ = ["ALGORITHMS", "AlgoConfig", "Algorithm", "make_algorithm"]


def make_algorithm(
    name: str,
    obs_dim: int,
    act_dim: int,
    config: AlgoConfig,
    device: Any,
    seeds: Sequence[int] = (0,),
) -> Algorithm:
    """The algorithm `name` training one set of networks per seed of `seeds`. Seed k's initial
    weights are those a run of seed k alone starts from: each seed's networks are built on their
    own (torch seeded from the seed's init stream) and stacked (offline_rl/seeds.py)."""
    if not seeds:
        raise ValueError("make_algorithm needs at least one seed")
    cls, _ = ALGORITHMS[name]
    singles = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(seed, INIT))
            singles.append(networks_state(cls(obs_dim, act_dim, config, "cpu", [seed])))
    algo: Algorithm = cls(obs_dim, act_dim, config, device, list(seeds))
    load_networks_state(algo, stack_networks(singles))
    return algo
