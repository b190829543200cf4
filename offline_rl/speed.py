"""Speed switches that leave the maths alone: torch.compile of the networks and bf16 autocast.

`accelerate(algo, ...)` returns the update function the loop calls. With `compile`, every network
the algorithm holds is compiled in place (`nn.Module.compile`, so state_dict keys, checkpoints and
`act` are unchanged); if compilation fails on the first update (no C++ compiler, an unsupported
op), the algorithm is restored to its state before that update, the networks go back to eager and
a warning says why. With `precision="bf16"`, the update runs under `torch.autocast(bfloat16)`:
matmuls in bf16, weights, optimiser state and losses listed by autocast as fp32 stay fp32.

`denormals_flushed` is the one switch that touches values, and only those below 1.2e-38: while
it is on, the CPU reads and writes denormal floats as zero. Adam's second moments of near-zero
gradients sink into that range, where each operation takes the CPU's slow path: the behaviour
SAC's fused Adam step took 1.8 ms at step 4,000 of a Hopper run against 0.18 with them flushed,
and TD3+BC and IQL train 1.2x faster flushed (docs/performance.md). The results stay exactly
repeatable, but differ in their last bits from a run without it.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import Tensor, nn

from core.checkpoint import rng_state, set_rng_state
from offline_rl.algos.base import Algorithm
from transitions.loader import TrainBatch

log = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16"]
UpdateFn = Callable[[TrainBatch], dict[str, Tensor]]


def networks_of(algo: Algorithm) -> list[nn.Module]:
    """The torch modules an algorithm holds as attributes (actors, critics, their targets)."""
    return [value for value in vars(algo).values() if isinstance(value, nn.Module)]


def _to_eager(modules: list[nn.Module]) -> None:
    for module in modules:
        # nn.Module.compile stores the compiled callable here; clearing it restores eager calls.
        module._compiled_call_impl = None


class AcceleratedUpdate:
    """`algo.update` with the chosen switches; callable like it."""

    def __init__(
        self, algo: Algorithm, compile: bool, precision: Precision, device: torch.device
    ) -> None:
        self.algo = algo
        self.precision = precision
        self.device_type = device.type
        self.modules = networks_of(algo) if compile else []
        for module in self.modules:
            module.compile()
        self.compiled = bool(self.modules)
        self._first_call_pending = self.compiled

    def _run(self, batch: TrainBatch, **options: Any) -> dict[str, Tensor]:
        with torch.autocast(
            self.device_type,
            dtype=torch.bfloat16,
            enabled=self.precision == "bf16",
            # Autocast's cache keeps one bf16 copy of each weight for the whole region, but an
            # update changes weights mid-region (CQL samples from the actor after stepping it),
            # and inside a CUDA graph the cache would point at memory the graph does not own.
            cache_enabled=False,
        ):
            return self.algo.update(batch, **options)

    def __call__(self, batch: TrainBatch, **options: Any) -> dict[str, Tensor]:
        """One update; `options` go to `algo.update` as they are (the behaviour learners'
        `diagnostics`)."""
        if not self._first_call_pending:
            return self._run(batch, **options)
        self._first_call_pending = False
        snapshot, rng = copy.deepcopy(self.algo.state_dict()), rng_state()
        try:
            return self._run(batch, **options)
        except Exception as error:  # any compiler failure: same update, eager
            log.warning(
                "torch.compile failed on the first update (%s: %s); training eagerly instead",
                type(error).__name__,
                str(error).splitlines()[0] if str(error) else "",
            )
            _to_eager(self.modules)
            self.compiled = False
            self.algo.load_state_dict(snapshot)
            set_rng_state(rng)
            return self._run(batch, **options)


def accelerate(
    algo: Algorithm, compile: bool = False, precision: Precision = "fp32", device: Any = "cpu"
) -> AcceleratedUpdate:
    return AcceleratedUpdate(algo, compile, precision, torch.device(device))


def autocast_dtype(device_type: str) -> torch.dtype:
    """The dtype a matmul returns here (and so a network's output): autocast's when it is on for
    `device_type` in this thread, else fp32."""
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return torch.float32


# The smallest denormal float32, made from its bits: a conversion from a Python float would
# itself be flushed if this module were imported with flushing on.
_DENORMAL = torch.tensor([1], dtype=torch.int32).view(torch.float32)


def denormals_are_flushed() -> bool:
    """Whether this thread's CPU reads denormal floats as zero (`torch.set_flush_denormal`)."""
    return _DENORMAL.mul(1.0).item() == 0.0


@contextmanager
def denormals_flushed(enabled: bool = True) -> Iterator[None]:
    """CPU floating point with denormals flushed to zero inside the block (when `enabled` and the
    CPU can), this thread's previous mode after it (the mode is the thread's own). GPUs are not
    affected."""
    if not enabled:
        yield
        return
    previous = denormals_are_flushed()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(previous)
