"""Catching host-device synchronisation in the training loop, on CPU: a test helper
(tests/offline_rl/test_speed.py) that keeps the loop free of calls that would stall it on a GPU."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch.overrides import TorchFunctionMode

SYNCING_METHODS = frozenset(
    {"item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__", "cpu"}
)


class HostSyncDetector(TorchFunctionMode):
    """Records every tensor method that makes the host wait for the device's result.

    On CPU nothing waits, but the same calls on CUDA stall the loop; catching them on CPU keeps the
    loop free of them on every device. Calls made inside torch.optim are left out: a non-capturable
    optimiser keeps its step counters on the host by design, so reading them never waits."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        name = getattr(func, "__name__", "")
        if name in SYNCING_METHODS and not _called_from_optimizer():
            self.calls.append(name)
        return func(*args, **(kwargs or {}))


def _called_from_optimizer() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if "/torch/optim/" in frame.f_code.co_filename:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


@contextmanager
def detect_host_syncs() -> Iterator[list[str]]:
    """`with detect_host_syncs() as calls:` ... `calls` names each synchronising call made."""
    detector = HostSyncDetector()
    with detector:
        yield detector.calls
