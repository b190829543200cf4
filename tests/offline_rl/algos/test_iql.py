"""IQL's actor learning-rate schedule: a device tensor the optimiser reads, so it also advances
inside CUDA graphs; it follows the cosine and survives a checkpoint round trip."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.offline_rl.algos.test_contract import buffer_for, build


def test_actor_lr_follows_the_cosine_to_zero_and_resumes(random_transitions: Path) -> None:
    steps, base = 6, 3e-4
    algo = build("iql", overrides={"actor_lr_cosine_steps": steps})
    buffer = buffer_for(random_transitions)
    group = algo.actor_opt.param_groups[0]  # type: ignore[attr-defined]
    seen = []
    for _ in range(4):
        algo.update(buffer.sample(32))
        seen.append(float(group["lr"]))
    expected = [base * 0.5 * (1 + math.cos(math.pi * k / steps)) for k in range(1, 5)]
    assert seen == pytest.approx(expected, rel=1e-5)

    restored = build("iql", overrides={"actor_lr_cosine_steps": steps}, seed=1)
    restored.load_state_dict(algo.state_dict())
    restored_group = restored.actor_opt.param_groups[0]  # type: ignore[attr-defined]
    assert restored_group["lr"] is restored.actor_lr  # type: ignore[attr-defined]
    for _ in range(3):
        restored.update(buffer.sample(32))
    assert float(restored_group["lr"]) == 0.0  # past the end of the cosine
    assert float(restored.updates) == 7  # type: ignore[attr-defined]
