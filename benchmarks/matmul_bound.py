"""The matmul bound of a training step at its own shapes: every matrix product the step runs, timed
alone on this machine, summed.

The speed benchmark's simple bound divides a step's FLOPs by the throughput of one 256x256x256
product. A step also multiplies thin matrices (the 11+3 inputs of a first layer, the one output of
a Q head, the transposed operands of backward passes), which run far below that peak, so the
simple bound is optimistic. This one records each product a step makes (function, shapes, strides,
dtype; through a dispatch mode, so autograd's backward products and autocast's bf16 products are
seen as they run) and times each distinct one in isolation on fresh tensors of the same layout: it
is what the step would take if everything but its matmuls cost nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
MATMULS = frozenset({aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default})

# (op, ((shape, stride, dtype) for each tensor argument), scalar keyword arguments)
Call = tuple[Any, tuple[tuple[tuple[int, ...], tuple[int, ...], torch.dtype], ...], tuple[Any, ...]]


class MatmulRecorder(TorchDispatchMode):
    """Counts every matrix product run inside it by its op and its operands' layout."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[Call] = Counter()

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        if func in MATMULS:
            layout = tuple(
                (tuple(a.shape), tuple(a.stride()), a.dtype)
                for a in args
                if isinstance(a, torch.Tensor)
            )
            self.calls[(func, layout, tuple(sorted((kwargs or {}).items())))] += 1
        return func(*args, **(kwargs or {}))


def _operand(shape: tuple[int, ...], stride: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    # Through as_strided over just enough memory, so that broadcast operands (stride 0) keep
    # their layout too.
    extent = 1 + sum((size - 1) * step for size, step in zip(shape, stride, strict=True))
    return torch.randn(extent if all(shape) else 0, dtype=dtype).as_strided(shape, stride)


def isolated_seconds(call: Call, min_seconds: float = 0.02) -> float:
    """Mean seconds of one product with this call's op and operand layout, run alone (at least
    5 runs and `min_seconds`, after 3 warm-up runs)."""
    func, layout, kwargs = call
    operands = [_operand(*spec) for spec in layout]
    for _ in range(3):
        func(*operands, **dict(kwargs))
    repeats, start = 0, time.perf_counter()
    while repeats < 5 or time.perf_counter() - start < min_seconds:
        func(*operands, **dict(kwargs))
        repeats += 1
    return (time.perf_counter() - start) / repeats


def matmul_seconds_per_step(step: Callable[[], Any], steps: int) -> float:
    """Seconds the matrix products of one call of `step` take when each runs alone (the mean over
    `steps` calls, so that steps taking different branches count at their rates)."""
    with MatmulRecorder() as recorder:
        for _ in range(steps):
            step()
    return sum(count * isolated_seconds(call) for call, count in recorder.calls.items()) / steps
