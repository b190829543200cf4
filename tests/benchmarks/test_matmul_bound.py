from __future__ import annotations

import torch

from benchmarks.matmul_bound import MatmulRecorder, isolated_seconds, matmul_seconds_per_step


def test_recorder_sees_forward_and_backward_products_with_their_layouts() -> None:
    layer = torch.nn.Linear(11, 32)
    x = torch.randn(64, 11, requires_grad=True)
    with MatmulRecorder() as recorder:
        layer(x).sum().backward()
    ops = sorted(str(call[0]) for call in recorder.calls.elements())
    # forward addmm; backward: grad of the input and of the weight
    assert ops == ["aten.addmm.default", "aten.mm.default", "aten.mm.default"]
    shapes = {tuple(spec[0] for spec in call[1]) for call in recorder.calls}
    assert ((64, 32), (32, 11)) in shapes  # grad_input = grad_out @ W
    assert ((32, 64), (64, 11)) in shapes  # grad_weight = grad_out^T @ x


def test_recorder_sees_bf16_products_under_autocast() -> None:
    layer = torch.nn.Linear(16, 16)
    with MatmulRecorder() as recorder, torch.autocast("cpu", dtype=torch.bfloat16):
        layer(torch.randn(8, 16))
    [(_, layout, _)] = recorder.calls
    assert {dtype for _, _, dtype in layout} == {torch.bfloat16}


def test_isolated_timing_handles_broadcast_operands() -> None:
    weight = torch.randn(2, 16, 4)
    x = torch.randn(1, 8, 16).expand(2, 8, 16)  # one input for both members: stride 0
    with MatmulRecorder() as recorder:
        torch.bmm(x, weight)
    assert any(0 in spec[1] for call in recorder.calls for spec in call[1])
    assert all(isolated_seconds(call, min_seconds=0.0) > 0 for call in recorder.calls)


def test_identical_products_are_counted_not_repeated() -> None:
    a, b = torch.randn(64, 64), torch.randn(64, 64)
    with MatmulRecorder() as recorder:
        for _ in range(3):
            a @ b
    assert list(recorder.calls.values()) == [3]
    assert matmul_seconds_per_step(lambda: a @ b, steps=2) > 0
