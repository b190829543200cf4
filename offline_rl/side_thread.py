"""An independent branch of an update run on a second CPU thread: the CPU counterpart of
`SideStream` (offline_rl/side_stream.py), for a learner whose step has two halves of similar size
that read each other's nothing (SAC: the critic's loss and gradients beside the actor's).

    critic = self.side.run(self.critic_step, batch)   # on the side thread
    ...                                               # the actor's half, on this one
    critic_metrics = critic.result()                  # joined: its gradients are in place

A branch runs under the modes of the thread that started it, which torch and the CPU keep per
thread: autocast (device, dtype, cache), grad mode and denormal flushing. Each thread does one
operation at a time, so the two halves each take a core only with one intra-op thread
(`torch.set_num_threads(1)`); with more, the halves' thread pools contend for the same cores
(measured: docs/performance.md). The maths is that of the same code run in sequence: the kernels
are the same and no random number is drawn on the side thread. Off the CPU, or with `enabled`
false, `run` calls the branch in place; on CUDA the side stream is the tool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import torch

from offline_rl.speed import denormals_are_flushed

T = TypeVar("T")


class SideThread:
    """One worker thread for one learner's CPU branches; in place when not on the CPU."""

    def __init__(self, device: torch.device, enabled: bool = True) -> None:
        self.device, self.enabled = torch.device(device), enabled
        self._pool: ThreadPoolExecutor | None = None  # started on first use

    @property
    def active(self) -> bool:
        return self.enabled and self.device.type == "cpu"

    def run(self, branch: Callable[..., T], *args: Any) -> Future[T]:
        """Start `branch(*args)` on the side thread under this thread's modes; its result (or
        its exception) comes from `.result()`."""
        if not self.active:
            done: Future[T] = Future()
            try:
                done.set_result(branch(*args))
            except Exception as error:  # from .result(), as from the thread
                done.set_exception(error)
            return done
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="side-thread")
        modes = (
            torch.is_autocast_enabled("cpu"),
            torch.get_autocast_dtype("cpu"),
            torch.is_autocast_cache_enabled(),
            torch.is_grad_enabled(),
            denormals_are_flushed(),
        )
        return self._pool.submit(_under_modes, modes, branch, *args)

    def __deepcopy__(self, memo: dict[int, Any]) -> SideThread:
        # A thread cannot be copied: the copy starts its own on first use.
        return SideThread(self.device, self.enabled)


def _under_modes(
    modes: tuple[bool, torch.dtype, bool, bool, bool], branch: Callable[..., T], *args: Any
) -> T:
    autocast, dtype, cache, grad, flush = modes
    torch.set_flush_denormal(flush)
    with (
        torch.autocast("cpu", dtype=dtype, enabled=autocast, cache_enabled=cache),
        torch.set_grad_enabled(grad),
    ):
        return branch(*args)


@contextmanager
def one_intra_op_thread(enabled: bool = True) -> Iterator[None]:
    """torch's intra-op threads set to one inside the block, so that a branch and the thread that
    started it take a core each; the previous count after it."""
    previous = torch.get_num_threads()
    if enabled:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
