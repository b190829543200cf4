"""Independent parts of an update run concurrently on the GPU, on a second CUDA stream.

A 256x256 MLP step at batch 256 is a chain of ~100-300 kernels of a few microseconds each, each
filling a fraction of the GPU; replayed from a CUDA graph the step takes about the sum of their
latencies. Parts of it do not depend on each other (TD3+BC's TD target and the critic's forward
pass; IQL's value, critic and actor steps once their inputs are computed; the diagnostics beside
the optimiser step). Queued on two streams, they become parallel branches of the captured graph
and the GPU runs them side by side: the step takes the length of its longest chain instead.

    with self.side.branch():      # queued on the side stream, after all the current stream has
        target = ...              # queued so far
    q = self.critic(...)          # queued on the current stream meanwhile
    self.side.join()              # what follows on the current stream waits for the branch

The maths and the order of random draws are those of the same code run in sequence: the kernels
are the same, and each branch starts from what the current stream had queued when it opened.
The rules an update keeps: it joins every side stream it used before it returns (a capture must
end joined, and the tensors a branch reads stay alive until then), and until the join its current
stream neither writes what a branch reads nor uses what a branch writes. On CPU, or with `enabled`
false, `branch()` runs its block in place and `join()` does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


class SideStream:
    """A second CUDA stream for one algorithm's concurrent branches; a no-op off CUDA."""

    def __init__(self, device: torch.device, enabled: bool = True) -> None:
        self.device = torch.device(device)
        self.enabled = enabled
        self._stream: torch.cuda.Stream | None = None  # created on first use, on the device
        self._joins: list[torch.cuda.Stream] = []  # the streams branches forked from, unjoined

    @property
    def active(self) -> bool:
        return self.enabled and self.device.type == "cuda"

    @contextmanager
    def branch(self) -> Iterator[None]:
        """Queue the block on the side stream, after everything already queued on the current one."""
        if not self.active:
            yield
            return
        origin = torch.cuda.current_stream(self.device)
        if self._stream is None:
            self._stream = torch.cuda.Stream(self.device)
        self._stream.wait_stream(origin)
        with torch.cuda.stream(self._stream):
            yield
        if origin not in self._joins:
            self._joins.append(origin)

    def join(self) -> None:
        """Make the stream each branch forked from wait for everything queued on the side stream."""
        for origin in self._joins:
            assert self._stream is not None
            origin.wait_stream(self._stream)
        self._joins.clear()

    def __deepcopy__(self, memo: dict[int, Any]) -> SideStream:
        # A CUDA stream cannot be copied: the copy makes its own on first use.
        return SideStream(self.device, self.enabled)


def side_streams_of(algo: object) -> list[SideStream]:
    return [value for value in vars(algo).values() if isinstance(value, SideStream)]


def set_concurrency(algo: object, enabled: bool) -> None:
    """Run the algorithm's branches on their side streams (the default) or in place, in sequence
    (to measure what concurrency gains, or to rule it out when debugging)."""
    for side in side_streams_of(algo):
        side.enabled = enabled
