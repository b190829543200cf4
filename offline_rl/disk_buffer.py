"""Training from a transitions file larger than memory (`train.storage: disk`): the batches of
`ReplayBuffer.from_transitions(load_transitions(path, device, split))`, bit for bit, with the rows
read from the memory-mapped file (`transitions/mapped.py`) instead of a copy in memory.

Same batches: each training seed draws its indices from its own sampler generator, with the same
call on the same device as `ReplayBuffer.sample`, so the same seeds give the same indices, uniform
over all rows of the split; the rows are gathered from the file and transformed by the same
elementwise operations (`transitions.loader.Transforms`). A run can therefore switch between the
two storages at a resume.

A background thread keeps the next `prefetch` batches ready (drawn, gathered, converted to tensors
and transformed, on the training device), so that the training thread only takes them from a
bounded queue; the gathers themselves run on `gathers` threads, so that rows not in the page cache
are read several at a time. numpy's gathers and torch's kernels release the GIL, so reading the
rows overlaps with the update. The thread draws ahead of training, hence the sampler state a
checkpoint saves is the one after the batches training took, recorded with each batch as it was
drawn, not the generators' own; stopping the thread (a new batch size, `set_sampler_state`,
`close`) rewinds the generators to it, so whatever was drawn ahead is drawn again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from offline_rl.seeds import SAMPLER, generator_states, generators, set_generator_states
from transitions.loader import Batch, TrainBatch, Transforms, WindowBatch, row_fields
from transitions.mapped import MappedRows, MappedWindows
from transitions.metadata import Split

POLL_S = 0.05  # how often a blocked queue call looks whether the other side stopped


@dataclass(frozen=True)
class _Ready:
    """A batch on the device and the sampler states right after its indices were drawn."""

    batch: TrainBatch
    states: list[Tensor]
    ready: torch.cuda.Event | None  # on CUDA: recorded on the producer's stream after the batch


class DiskReplayBuffer:
    """The sampling side of `ReplayBuffer` (`sample`, `sampler_state`, `set_sampler_state`,
    `device`, `size`) over rows that stay in the file; with `context`, that of `WindowBuffer`
    (offline_rl/windows.py): the same windows of `context` steps, for sequence models."""

    def __init__(
        self,
        path: str | Path,
        device: torch.device | str = "cpu",
        seeds: Sequence[int] = (0,),
        split: Split = "train",
        prefetch: int = 4,
        gathers: int = 8,  # cold rows: 8 gathers read ~2.7x as fast as 1 (docs/performance.md)
        context: int | None = None,
    ) -> None:
        if prefetch < 1 or gathers < 1:
            raise ValueError(f"prefetch {prefetch} and gathers {gathers}: at least 1 each")
        if context is not None and context < 1:
            raise ValueError(f"a window holds at least one step, not {context}")
        self.mapped = MappedRows(path, split)
        self.context = context
        self.meta = self.mapped.meta
        self.size = self.mapped.size
        self.device = torch.device(device)
        self.prefetch, self.gathers = prefetch, gathers
        self.generators = generators(seeds, SAMPLER, self.device)  # as ReplayBuffer's
        self._transforms = Transforms.of(self.meta, self.device)
        self._consumed = generator_states(self.generators)
        self._producer: _Producer | None = None
        # The thread holds no reference to the buffer, so a buffer nobody closed still stops it.
        self._running: list[_Producer] = []
        weakref.finalize(self, _stop_all, self._running)

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return self.mapped.shapes

    def sample(self, batch_size: int) -> TrainBatch:
        """The next batch: (S, batch_size, ...) fields, seed k's rows (or windows) from seed k's
        generator."""
        if self._producer is None or self._producer.batch_size != batch_size:
            self._stop()
            self._producer = _Producer(
                self.mapped,
                self.generators,
                self._transforms,
                self.device,
                batch_size,
                self.prefetch,
                self.gathers,
                self.context,
            )
            self._running.append(self._producer)
        ready = self._producer.take()
        if ready.ready is not None:  # the batch was made on the producer's stream
            stream = torch.cuda.current_stream(self.device)
            stream.wait_event(ready.ready)
            # The fields were made on the producer's stream: their memory must not be reused
            # until this stream is done with it.
            for field in dataclasses.fields(ready.batch):
                value = getattr(ready.batch, field.name)
                if isinstance(value, Tensor):
                    value.record_stream(stream)
        self._consumed = ready.states
        return ready.batch

    def sampler_state(self) -> list[Tensor]:
        """Each seed's generator state after the batches `sample` returned (not those drawn
        ahead): what ReplayBuffer.sampler_state gives after as many samples."""
        return [state.clone() for state in self._consumed]

    def set_sampler_state(self, states: list[Any]) -> None:
        self._stop()
        set_generator_states(self.generators, states, "sampler")
        self._consumed = generator_states(self.generators)

    def close(self) -> None:
        self._stop()
        self.mapped.close()

    def __enter__(self) -> DiskReplayBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stop(self) -> None:
        """Stop drawing ahead and rewind the generators to the batches training took."""
        if self._producer is None:
            return
        self._producer.stop()
        self._running.remove(self._producer)
        self._producer = None
        set_generator_states(self.generators, self._consumed, "sampler")


def _stop_all(running: list[_Producer]) -> None:
    for producer in running:
        producer.stop()


class _Producer:
    """The background thread and its bounded queue of ready batches, for one batch size.

    The thread draws indices in order and hands each batch's gather to a pool of `gathers`
    threads, keeping that many in flight: where the rows are not in the page cache, each gather
    waits on page faults one after another, and several gathers keep several reads outstanding.
    It then finishes the batches in the order drawn (to the device, transforms)."""

    def __init__(
        self,
        mapped: MappedRows,
        generators: list[torch.Generator],
        transforms: Transforms,
        device: torch.device,
        batch_size: int,
        prefetch: int,
        gathers: int,
        context: int | None,
    ) -> None:
        self.mapped, self.generators, self.transforms = mapped, generators, transforms
        self.context = context
        self.device, self.batch_size = device, batch_size
        self.queue: queue.Queue[_Ready | BaseException] = queue.Queue(prefetch)
        self.pool = ThreadPoolExecutor(gathers, thread_name_prefix="disk-gather")
        self.gathers = gathers
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="disk-batches")
        self.thread.start()

    def take(self) -> _Ready:
        while True:
            try:
                item = self.queue.get(timeout=POLL_S)
            except queue.Empty:
                if not self.thread.is_alive():
                    raise RuntimeError("the disk sampler's thread ended") from None
                continue
            if isinstance(item, BaseException):
                raise item
            return item

    def stop(self) -> None:
        self.stopping.set()
        while self.thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                self.queue.get(timeout=POLL_S)
        self.thread.join()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        try:
            with self._stream() as stream:
                in_flight: deque[tuple[Future[Any], torch.Size, list[Tensor]]] = deque()
                while not self.stopping.is_set():
                    while len(in_flight) < self.gathers:
                        indices, states = self._draw()
                        gather = self.pool.submit(self._gather, indices.flatten().numpy())
                        in_flight.append((gather, indices.shape, states))
                    gather, shape, states = in_flight.popleft()
                    batch = self._finish(gather.result(), shape)
                    event = None
                    if stream is not None:
                        event = torch.cuda.Event()
                        event.record(stream)
                    self._put(_Ready(batch, states, event))
        except BaseException as error:  # raised on the training thread by `take`
            self._put(error)

    def _stream(self) -> contextlib.AbstractContextManager[torch.cuda.Stream | None]:
        """On CUDA, a stream of the producer's own: its copies and index transfers then wait
        only for its own work, not for the updates queued on the training stream."""
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        return _on_stream(torch.cuda.Stream(self.device))

    def _draw(self) -> tuple[Tensor, list[Tensor]]:
        """The next batch's (S, B) indices, on the host, and the sampler states after them.
        The same draws as ReplayBuffer.sample: one randint per seed on the training device."""
        indices = torch.stack(
            [
                torch.randint(
                    0, self.mapped.size, (self.batch_size,), device=self.device, generator=g
                )
                for g in self.generators
            ]
        )
        return indices.cpu(), generator_states(self.generators)

    def _gather(self, indices: np.ndarray) -> np.ndarray | MappedWindows:
        if self.context is None:
            return self.mapped.gather(indices)
        return self.mapped.gather_windows(indices, self.context)

    def _finish(self, gathered: np.ndarray | MappedWindows, shape: torch.Size) -> TrainBatch:
        """Gathered raw rows -> the batch on the device, the file's transforms applied."""
        if isinstance(gathered, MappedWindows):
            return self._finish_windows(gathered, shape)
        packed = torch.from_numpy(gathered).to(self.device).view(*shape, -1)
        observations, actions, rewards, next_observations, dones, next_actions = row_fields(
            packed, self.mapped.shapes
        )
        t = self.transforms
        return Batch(
            observations=t.observations_(observations),
            actions=t.actions_(actions),
            rewards=t.rewards_(rewards),
            next_observations=t.observations_(next_observations),
            dones=dones,
            next_actions=t.actions_(next_actions),
        )

    def _finish_windows(self, gathered: MappedWindows, shape: torch.Size) -> WindowBatch:
        """WindowBuffer's windows: transformed rows, zeroed where they are padding."""

        def device(array: np.ndarray) -> Tensor:
            return torch.from_numpy(array).to(self.device).view(*shape, *array.shape[1:])

        rows, mask = device(gathered.rows), device(gathered.mask)
        meta, t = self.mapped.meta, self.transforms
        observations, actions, returns_to_go = row_fields(
            rows, [(meta.obs_dim,), (meta.act_dim,), ()]
        )
        t.observations_(observations)
        t.actions_(actions)
        t.returns_to_go_(returns_to_go, device(gathered.steps_left))
        observations, actions, returns_to_go = row_fields(
            rows * mask.unsqueeze(-1), [(meta.obs_dim,), (meta.act_dim,), ()]
        )
        return WindowBatch(observations, actions, returns_to_go, device(gathered.timesteps), mask)

    def _put(self, item: _Ready | BaseException) -> None:
        while not self.stopping.is_set():
            try:
                self.queue.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue


@contextlib.contextmanager
def _on_stream(stream: torch.cuda.Stream) -> Iterator[torch.cuda.Stream]:
    with torch.cuda.stream(stream):
        yield stream
