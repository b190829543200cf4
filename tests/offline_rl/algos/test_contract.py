"""The algorithm contract, checked for every registered algorithm (as d3rlpy's algo tests do)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from offline_rl.algos.base import Algorithm
from offline_rl.algos.registry import ALGORITHMS, algorithm_names, make_algorithm
from offline_rl.buffer import ReplayBuffer
from offline_rl.seeds import networks_state, unstack_networks
from offline_rl.windows import WindowBuffer
from tests.offline_rl.algos.discrete_data import discrete_buffer
from transitions.loader import load_transitions

NAMES = sorted(ALGORITHMS)
# Small networks; discrete CQL copies its target critics every few updates, so that the copy is
# among the updates every test runs.
# The Decision Transformer: one narrow layer over windows of 4 steps.
SMALL: dict[str, Any] = {
    "hidden": (32, 32),
    "target_update_interval": 4,
    **{"width": 32, "layers": 1, "context": 4},
}


def build(
    name: str,
    obs_dim: int = 11,
    act_dim: int = 3,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    device: torch.device | str = "cpu",
    seeds: Sequence[int] | None = None,
) -> Algorithm:
    """`name` with small networks, training `seeds` (default: the one seed `seed`)."""
    _, config_model = ALGORITHMS[name]
    fields = config_model.model_fields
    values = {k: v for k, v in {**SMALL, **(overrides or {})}.items() if k in fields}
    config = config_model(**values).with_default_lr(3e-4)
    return make_algorithm(name, obs_dim, act_dim, config, torch.device(device), seeds or [seed])


def buffer_for(path: Path, seed: int = 0, seeds: Sequence[int] | None = None) -> ReplayBuffer:
    return ReplayBuffer.from_transitions(load_transitions(path), seeds=seeds or [seed])


def discrete(name: str) -> bool:
    return ALGORITHMS[name][1].DISCRETE_ACTIONS


def sequence(name: str) -> bool:
    return ALGORITHMS[name][1].SEQUENCE


# The algorithms of Box actions that train on rows (every one but the sequence models).
ROW_BOX_NAMES = [name for name in algorithm_names(discrete_actions=False) if not sequence(name)]


def data_for(
    name: str, path: Path, seed: int = 0, seeds: Sequence[int] | None = None
) -> ReplayBuffer | WindowBuffer:
    """Batches `name` takes: rows of the Box file at `path` (11-wide observations, 3 actions),
    windows of them for a sequence model or, for an algorithm of Discrete actions, random rows of
    the same width with Discrete(3) actions."""
    if discrete(name):
        return discrete_buffer(seeds or [seed])
    if sequence(name):
        return WindowBuffer(load_transitions(path), SMALL["context"], seeds or [seed])
    return buffer_for(path, seed, seeds)


def acting_input(name: str, batch: Any) -> Any:
    """What `act` takes: observations, or the windows of a sequence model."""
    return batch if sequence(name) else batch.observations


def params_of(algo: Algorithm) -> dict[str, torch.Tensor]:
    flat: dict[str, torch.Tensor] = {}

    def walk(prefix: str, state: Any) -> None:
        if isinstance(state, torch.Tensor):
            flat[prefix] = state.detach().clone()
        elif isinstance(state, dict):
            for k, v in state.items():
                walk(f"{prefix}.{k}", v)

    walk("", {k: v for k, v in algo.state_dict().items() if not k.endswith("_opt")})
    return flat


@pytest.mark.parametrize("name", NAMES)
def test_update_gives_finite_losses_and_changes_parameters(
    name: str, random_transitions: Path
) -> None:
    algo = build(name)
    buffer = data_for(name, random_transitions)
    before = params_of(algo)
    for _ in range(4):  # delayed actor updates (TD3) need a few steps
        metrics = algo.update(buffer.sample(64))
    assert metrics and all(torch.isfinite(v).all() for v in metrics.values())
    after = params_of(algo)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, f"{name}: no parameter changed after updates"


@pytest.mark.parametrize("name", NAMES)
def test_save_load_gives_identical_actions(name: str, random_transitions: Path) -> None:
    algo = build(name)
    buffer = data_for(name, random_transitions)
    for _ in range(3):
        algo.update(buffer.sample(64))
    restored = build(name, seed=123)
    restored.load_state_dict(algo.state_dict())
    batch = buffer.sample(16)
    obs = acting_input(name, batch)
    assert torch.equal(algo.act(obs), restored.act(obs))
    if discrete(name):  # indices of the 3 actions
        actions = algo.act(obs)
        assert actions.dtype == torch.int64 and actions.shape == batch.observations.shape[:-1]
        assert actions.min() >= 0 and actions.max() < 3
    else:
        assert algo.act(obs).abs().max() <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_parameters(name: str, random_transitions: Path) -> None:
    def run() -> dict[str, torch.Tensor]:
        algo = build(name, seed=7)
        torch.manual_seed(123)  # the global RNG plays no part: it differs between the runs
        torch.rand(int(torch.randint(1, 9, ())))
        buffer = data_for(name, random_transitions, seed=7)
        for _ in range(5):
            algo.update(buffer.sample(64))
        return params_of(algo)

    first, second = run(), run()
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


@pytest.mark.parametrize("name", NAMES)
def test_seed_k_of_a_multi_seed_run_is_the_single_seed_run_k(
    name: str, random_transitions: Path
) -> None:
    """Same losses and weights (1e-5, fp32) whether seed 5 trains alone or beside 2 others."""
    seeds = [11, 5, 0]

    def run(run_seeds: list[int]) -> tuple[Algorithm, list[dict[str, torch.Tensor]]]:
        algo = build(name, seeds=run_seeds)
        buffer = data_for(name, random_transitions, seeds=run_seeds)
        return algo, [dict(algo.update(buffer.sample(64))) for _ in range(6)]

    multi, multi_losses = run(seeds)
    alone, alone_losses = run([5])
    for step, (m, a) in enumerate(zip(multi_losses, alone_losses, strict=True)):
        assert m.keys() == a.keys()
        for key in a:
            assert m[key].shape == (3,) and a[key].shape == (1,), key
            torch.testing.assert_close(
                m[key][1], a[key][0], rtol=1e-5, atol=1e-5, msg=f"{key} {step}"
            )
    multi_networks = unstack_networks(networks_state(multi), 1, len(seeds))
    for part, state in networks_state(alone).items():
        got = multi_networks[part]
        pairs = (
            [(got, state)]
            if isinstance(state, torch.Tensor)
            else [(got[k], v) for k, v in state.items()]
        )
        for g, want in pairs:
            torch.testing.assert_close(g, want, rtol=1e-5, atol=1e-5, msg=part)


@pytest.mark.parametrize("name", NAMES)
def test_validation_losses_are_finite_per_seed_and_learn_nothing(
    name: str, random_transitions: Path
) -> None:
    algo = build(name, seeds=[0, 1])
    buffer = data_for(name, random_transitions, seeds=[0, 1])
    before = params_of(algo)
    losses = algo.validation_losses(buffer.sample(32))
    assert ("action_mismatch" if discrete(name) else "action_mse") in losses
    assert all(v.shape == (2,) and torch.isfinite(v).all() for v in losses.values())
    after = params_of(algo)
    assert all(torch.equal(before[k], after[k]) for k in before)
