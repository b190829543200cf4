"""The registry: `train.algo` in params.yaml names one of these; each entry is (class, config
model), the config models being `config.ALGO_CONFIGS`'."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from core.config import ConfigError
from offline_rl.algos.awac import AWAC
from offline_rl.algos.base import Algorithm
from offline_rl.algos.bc import BC
from offline_rl.algos.config import ALGO_CONFIGS, AlgoConfig
from offline_rl.algos.cql import CQL
from offline_rl.algos.discrete_bc import DiscreteBC
from offline_rl.algos.discrete_cql import DiscreteCQL
from offline_rl.algos.discrete_iql import DiscreteIQL
from offline_rl.algos.dt import DecisionTransformer
from offline_rl.algos.iql import IQL
from offline_rl.algos.rebrac import ReBRAC
from offline_rl.algos.td3_bc import TD3BC
from offline_rl.networks import Observations
from offline_rl.seeds import INIT, load_networks_state, networks_state, stack_networks, stream_seed
from transitions.metadata import TransitionsMeta
from transitions.spaces import ObservationLayout

CLASSES: dict[str, type[Any]] = {
    "bc": BC,
    "td3_bc": TD3BC,
    "iql": IQL,
    "cql": CQL,
    "awac": AWAC,
    "rebrac": ReBRAC,
    "discrete_bc": DiscreteBC,
    "discrete_cql": DiscreteCQL,
    "discrete_iql": DiscreteIQL,
    "dt": DecisionTransformer,
}
ALGORITHMS: dict[str, tuple[type[Any], type[AlgoConfig]]] = {
    name: (cls, ALGO_CONFIGS[name]) for name, cls in CLASSES.items()
}


def make_algorithm(
    name: str,
    obs_dim: Observations,
    act_dim: int,
    config: AlgoConfig,
    device: Any,
    seeds: Sequence[int] = (0,),
) -> Algorithm:
    """The algorithm `name` training one set of networks per seed of `seeds`. Seed k's initial
    weights are those a run of seed k alone starts from: each seed's networks are built on their
    own (torch seeded from the seed's init stream) and stacked (offline_rl/seeds.py).

    `obs_dim` is a width or the observation layout; an image layout goes to the algorithms that
    build their networks from it (`IMAGES`: the CNN encoder), every other algorithm gets the width."""
    if not seeds:
        raise ValueError("make_algorithm needs at least one seed")
    cls, _ = ALGORITHMS[name]
    if isinstance(obs_dim, ObservationLayout):
        if obs_dim.image and not getattr(cls, "IMAGES", False):
            raise ConfigError(
                f"train.algo: {name} does not take image observations {obs_dim.image}; "
                f"choose one of {image_algorithms()}"
            )
        obs_dim = obs_dim if obs_dim.image else obs_dim.obs_dim
    singles = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(seed, INIT))
            singles.append(networks_state(cls(obs_dim, act_dim, config, "cpu", [seed])))
    algo: Algorithm = cls(obs_dim, act_dim, config, device, list(seeds))
    load_networks_state(algo, stack_networks(singles))
    return algo


def image_algorithms() -> list[str]:
    """The registered algorithms whose networks read image observations (the CNN encoder)."""
    return sorted(name for name, (cls, _) in ALGORITHMS.items() if getattr(cls, "IMAGES", False))


def algorithm_names(discrete_actions: bool) -> list[str]:
    """The registered algorithms that take Discrete actions (True) or Box actions (False)."""
    return sorted(
        name
        for name, (_, model) in ALGORITHMS.items()
        if discrete_actions == model.DISCRETE_ACTIONS
    )


def check_action_space(
    name: str, meta: TransitionsMeta, path: object, key: str = "train.algo"
) -> None:
    """Fail in one line, naming `key`, the file and its action space, when algorithm `name` cannot
    act in the file's action space (a Box algorithm on Discrete actions or the other way round)."""
    _, model = ALGORITHMS[name]
    if meta.discrete_actions == model.DISCRETE_ACTIONS:
        return
    space = f"Discrete({meta.num_actions})" if meta.discrete_actions else f"Box({meta.act_dim},)"
    kind = "Discrete" if model.DISCRETE_ACTIONS else "Box"
    raise ConfigError(
        f"{key}: {name} needs {kind} actions, but {path} holds {space} actions; choose one of "
        f"{algorithm_names(meta.discrete_actions)}"
    )
