"""The Decision Transformer beyond the contract every algorithm meets (test_contract.py): the
return it is asked for, its validation losses over held-out windows and its evaluation with
history in a batched vector environment."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from core.config import ConfigError
from offline_rl.algos.config import DTConfig
from offline_rl.algos.dt import target_return
from offline_rl.evaluation import AgentPolicy, evaluate_policy
from offline_rl.trainer import validation_losses
from tests.offline_rl.algos.test_contract import build
from tests.offline_rl.test_windows import transitions
from transitions.loader import load_transitions


def test_the_target_return_is_the_papers_for_its_env_or_the_configured_one() -> None:
    meta = transitions([3]).meta  # Hopper-v5
    assert target_return(DTConfig(), meta) == 3600.0
    assert target_return(DTConfig(target_return=1800.0), meta) == 1800.0
    other = dataclasses.replace(meta, env_id="Pendulum-v1")
    with pytest.raises(ConfigError, match=r"algos.dt.target_return: .*Pendulum-v1"):
        target_return(DTConfig(), other)
    assert target_return(DTConfig(target_return=-200.0), other) == -200.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"return_to_go_discount": 0.99}, "discounted by 0.99"),
        ({"reward_shift": -1.0}, "reward_shift"),
    ],
)
def test_returns_the_model_cannot_condition_on_fail_before_training(
    change: dict[str, Any], message: str
) -> None:
    meta = dataclasses.replace(transitions([3]).meta, **change)
    with pytest.raises(ConfigError, match=message):
        target_return(DTConfig(), meta)


def test_validation_averages_every_held_out_window(random_transitions: Path) -> None:
    data = load_transitions(random_transitions)
    algo = build("dt", seeds=[0, 1])
    losses = validation_losses(algo, data, chunk=100)
    assert set(losses) == {"action_mse"}
    assert all(value > 0 for value in losses["action_mse"])
    # no sampling: every row's window once, whatever the chunks
    again = validation_losses(algo, data, chunk=37)
    assert again["action_mse"] == pytest.approx(losses["action_mse"], rel=1e-5)


def test_evaluates_every_seed_with_its_own_history(random_transitions: Path) -> None:
    meta = load_transitions(random_transitions).meta
    algo = build("dt", seeds=[0, 1])
    policy = AgentPolicy.of(algo, meta, torch.device("cpu"), seeds=2)
    results = evaluate_policy(meta.env_id, policy, 2, 0, meta.ref_min_score, meta.ref_max_score, 2)
    assert len(results) == 2 and all(len(r.returns) == 2 for r in results)
    assert results[0].returns != results[1].returns  # two seeds' networks, the same episodes
    again = evaluate_policy(meta.env_id, policy, 2, 0, meta.ref_min_score, meta.ref_max_score, 2)
    assert again == results  # histories start afresh with every evaluation
