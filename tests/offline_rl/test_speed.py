"""The speed switches keep the algorithm contract, and the update never waits on the device."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from offline_rl.algos.registry import ALGORITHMS
from offline_rl.speed import accelerate, denormals_are_flushed, denormals_flushed, networks_of
from tests.offline_rl.algos.test_contract import (
    acting_input,
    buffer_for,
    build,
    data_for,
    params_of,
)
from tests.offline_rl.host_syncs import detect_host_syncs

NAMES = sorted(ALGORITHMS)
SWITCHES: dict[str, dict[str, Any]] = {"bf16": {"precision": "bf16"}, "compile": {"compile": True}}


def run_updates(name: str, path: Path, steps: int, seed: int = 7, **switches: Any) -> Any:
    algo = build(name, seed=seed)
    torch.manual_seed(seed)
    buffer = data_for(name, path, seed=seed)
    update = accelerate(algo, **switches)
    metrics = {}
    for _ in range(steps):
        metrics = update(buffer.sample(64))
    return algo, update, metrics


@pytest.mark.parametrize("name", NAMES)
def test_bf16_contract(name: str, random_transitions: Path) -> None:
    before = params_of(build(name, seed=7))
    algo, _, metrics = run_updates(name, random_transitions, 4, precision="bf16")
    assert metrics and all(torch.isfinite(v).all() for v in metrics.values())
    after = params_of(algo)
    assert all(v.dtype == before[k].dtype for k, v in after.items()), "weights must stay fp32"
    assert any(not torch.equal(before[k], after[k]) for k in before)
    again = params_of(run_updates(name, random_transitions, 4, precision="bf16")[0])
    assert all(torch.equal(after[k], again[k]) for k in after), "bf16 runs must be reproducible"
    restored = build(name, seed=123)
    restored.load_state_dict(algo.state_dict())
    obs = acting_input(name, data_for(name, random_transitions).sample(16))
    assert torch.equal(algo.act(obs), restored.act(obs))


@pytest.mark.slow  # inductor compiles each network: about a minute per algorithm on 2 cores
@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_compile_contract_matches_eager(name: str, random_transitions: Path) -> None:
    eager, _, _ = run_updates(name, random_transitions, 4)
    compiled, update, metrics = run_updates(name, random_transitions, 4, compile=True)
    assert update.compiled, "compilation fell back to eager on this machine"
    assert all(torch.isfinite(v).all() for v in metrics.values())
    a, b = params_of(eager), params_of(compiled)
    for key in a:  # same maths; fused kernels may round differently in the last bits
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
    restored = build(name, seed=123)
    restored.load_state_dict(compiled.state_dict())
    obs = acting_input(name, data_for(name, random_transitions).sample(16))
    torch.testing.assert_close(compiled.act(obs), restored.act(obs))


def test_compile_failure_falls_back_to_eager_from_the_same_state(
    random_transitions: Path, caplog: pytest.LogCaptureFixture
) -> None:
    eager, _, eager_metrics = run_updates("td3_bc", random_transitions, 4)

    algo = build("td3_bc", seed=7)
    torch.manual_seed(7)
    buffer = buffer_for(random_transitions, seed=7)
    update = accelerate(algo, compile=True)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no C++ compiler")

    for module in networks_of(algo):
        module._compiled_call_impl = broken  # what a failing inductor build looks like
    with caplog.at_level(logging.WARNING):
        for _ in range(4):
            metrics = update(buffer.sample(64))
    assert not update.compiled
    assert "torch.compile failed" in caplog.text
    a, b = params_of(eager), params_of(algo)
    assert all(torch.equal(a[k], b[k]) for k in a), "the failed update must not count twice"
    assert torch.equal(metrics["critic_loss"], eager_metrics["critic_loss"])


@pytest.mark.parametrize("switch", sorted(SWITCHES))
@pytest.mark.parametrize("name", NAMES)
def test_update_never_synchronises_with_the_device(
    name: str, switch: str, random_transitions: Path
) -> None:
    algo = build(name)
    buffer = data_for(name, random_transitions)
    switches = SWITCHES[switch] if switch == "bf16" else {}  # compile is traced, not dispatched
    update = accelerate(algo, **switches)
    with detect_host_syncs() as calls:
        for _ in range(4):
            update(buffer.sample(64))
    assert calls == [], f"{name}: host-device syncs in the update: {sorted(set(calls))}"


def test_sync_detector_sees_a_host_read() -> None:
    with detect_host_syncs() as calls:
        float(torch.ones(2).sum())
        torch.zeros(1).item()
    assert calls == ["__float__", "item"]


def test_bf16_update_sees_weights_it_changed() -> None:
    """CQL samples from its actor after stepping it: autocast must not serve the old bf16 copy."""
    layer = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)

    class SteppingAlgo:
        def update(self, batch: Any) -> dict[str, torch.Tensor]:
            before = layer(x)
            with torch.no_grad():
                layer.weight.add_(1.0)
            return {"change": (layer(x) - before).abs().sum()}

    metrics = accelerate(SteppingAlgo(), precision="bf16")(None)  # type: ignore[arg-type]
    assert metrics["change"] > 1.0


@pytest.mark.parametrize("before", [False, True])
def test_denormals_flushed_inside_the_block_and_the_mode_restored_after(before: bool) -> None:
    torch.set_flush_denormal(before)
    try:
        assert denormals_are_flushed() is before
        with denormals_flushed():
            assert denormals_are_flushed()
        assert denormals_are_flushed() is before
        with pytest.raises(RuntimeError), denormals_flushed():
            raise RuntimeError("a failing update")
        assert denormals_are_flushed() is before  # restored on the way out of an error too
        with denormals_flushed(False):
            assert denormals_are_flushed() is before
    finally:
        torch.set_flush_denormal(False)
