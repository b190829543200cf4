"""The algorithm contract, checked for every registered algorithm (as d3rlpy's algo tests do)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from offline_rl.algos import ALGORITHMS, Algorithm, make_algorithm
from offline_rl.buffer import ReplayBuffer
from offline_rl.transitions import load_transitions

NAMES = sorted(ALGORITHMS)
SMALL = {"hidden": (32, 32)}


def build(
    name: str,
    obs_dim: int = 11,
    act_dim: int = 3,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    device: torch.device | str = "cpu",
) -> Algorithm:
    torch.manual_seed(seed)
    _, config_model = ALGORITHMS[name]
    fields = config_model.model_fields
    values = {k: v for k, v in {**SMALL, **(overrides or {})}.items() if k in fields}
    config = config_model(**values).with_default_lr(3e-4)
    return make_algorithm(name, obs_dim, act_dim, config, torch.device(device))


def buffer_for(path: Path, seed: int = 0) -> ReplayBuffer:
    return ReplayBuffer.from_transitions(load_transitions(path), seed=seed)


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
    buffer = buffer_for(random_transitions)
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
    buffer = buffer_for(random_transitions)
    for _ in range(3):
        algo.update(buffer.sample(64))
    restored = build(name, seed=123)
    restored.load_state_dict(algo.state_dict())
    obs = buffer.sample(16).observations
    assert torch.equal(algo.act(obs), restored.act(obs))
    assert algo.act(obs).abs().max() <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_parameters(name: str, random_transitions: Path) -> None:
    def run() -> dict[str, torch.Tensor]:
        algo = build(name, seed=7)
        torch.manual_seed(7)
        buffer = buffer_for(random_transitions, seed=7)
        for _ in range(5):
            algo.update(buffer.sample(64))
        return params_of(algo)

    first, second = run(), run()
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
