"""Registry: `train.algo` in params.yaml names one of these; each entry is (class, config model)."""

from __future__ import annotations

from typing import Any

from offline_rl.algos.awac import AWAC, AWACConfig
from offline_rl.algos.base import AlgoConfig, Algorithm
from offline_rl.algos.bc import BC, BCConfig
from offline_rl.algos.cql import CQL, CQLConfig
from offline_rl.algos.iql import IQL, IQLConfig
from offline_rl.algos.rebrac import ReBRAC, ReBRACConfig
from offline_rl.algos.td3_bc import TD3BC, TD3BCConfig

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
    name: str, obs_dim: int, act_dim: int, config: AlgoConfig, device: Any
) -> Algorithm:
    cls, _ = ALGORITHMS[name]
    algo: Algorithm = cls(obs_dim, act_dim, config, device)
    return algo
