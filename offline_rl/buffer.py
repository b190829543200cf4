"""Device-resident replay buffer and uniform batch sampler: no host round trip per batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from offline_rl.seeds import SAMPLER, generator_states, generators, set_generator_states
from transitions.loader import Batch, Transitions, packed_rows, row_fields


class ReplayBuffer:
    """Fixed-capacity storage on one device; grows by `add` (online SAC) or is filled once (offline).

    All row fields live side by side in one (capacity, width) tensor, `rows`, so a batch is one
    gather, not one per field (docs/performance.md has what that saves); the fields are
    column views of it, read-only attributes, written in place (`add`, or `buffer.rewards[...]`).
    Image observations (uint8) are the exception: observations and next_observations stay bytes
    in two tensors of their own (`images`), gathered beside the rows; a batch's observations are
    uint8 and the network's encoder scales them on the device.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        capacity: int,
        device: torch.device | str = "cpu",
        seeds: Sequence[int] = (0,),
        with_next_actions: bool = False,
        *,
        action_shape: tuple[int, ...] | None = None,
        images: bool = False,
    ) -> None:
        # `action_shape` () keeps a Discrete action as one float column (its index); None: (act_dim,)
        # `images`: observations are an image's obs_dim bytes, kept uint8 outside the packed rows
        action = (act_dim,) if action_shape is None else tuple(action_shape)
        shapes: list[tuple[int, ...]] = [(obs_dim,), action, (), (obs_dim,), ()]
        shapes += [action] if with_next_actions else []
        pixels: tuple[Tensor, Tensor] | None = None
        if images:
            shapes = [action, (), ()] + ([action] if with_next_actions else [])
            pixels = (
                torch.zeros(capacity, obs_dim, dtype=torch.uint8, device=device),
                torch.zeros(capacity, obs_dim, dtype=torch.uint8, device=device),
            )
        rows, _ = packed_rows(capacity, shapes, torch.device(device))
        rows.zero_()
        self._init(rows, shapes, size=0, seeds=seeds, images=pixels)

    @staticmethod
    def _split_images(
        fields: list[Tensor],
    ) -> tuple[list[Tensor], tuple[Tensor, Tensor] | None]:
        """The fields kept in packed float rows, and the uint8 (observations, next_observations)."""
        if fields[0].dtype != torch.uint8:
            return fields, None
        return [fields[1], fields[2], *fields[4:]], (fields[0], fields[3])

    @classmethod
    def from_transitions(cls, data: Transitions, seeds: Sequence[int] = (0,)) -> ReplayBuffer:
        """Sample from already-loaded rows; no copy when `load_transitions` packed them."""
        fields = [data.observations, data.actions, data.rewards, data.next_observations]
        fields += [data.dones] + ([] if data.next_actions is None else [data.next_actions])
        fields, images = cls._split_images(fields)
        shapes = [tuple(field.shape[1:]) for field in fields]
        packed = data.packed
        if packed is None or any(  # separate tensors, or fields replaced since loading
            field.untyped_storage().data_ptr() != packed.untyped_storage().data_ptr()
            for field in fields
        ):
            packed, views = packed_rows(len(data), shapes, data.observations.device)
            for view, field in zip(views, fields, strict=True):
                view.copy_(field)
        buffer = cls.__new__(cls)
        buffer._init(packed, shapes, size=len(data), seeds=seeds, images=images)
        return buffer

    def _init(
        self,
        rows: Tensor,
        shapes: list[tuple[int, ...]],
        size: int,
        seeds: Sequence[int],
        images: tuple[Tensor, Tensor] | None = None,
    ) -> None:
        self.rows = rows
        self._shapes = shapes
        self.images = images  # uint8 (observations, next_observations), or None: all in `rows`
        # the fields in Batch order; an image's two arrays slot in at 0 and 3
        self._views = self._with_images(row_fields(rows, shapes), images)
        self.device = rows.device
        self.capacity = rows.shape[0]
        # `size` on the device as well, for sample_filled: read there, not baked into a graph
        self.filled = torch.zeros((), dtype=torch.int64, device=self.device)
        self.size = size
        self.generators = generators(seeds, SAMPLER, self.device)  # one per training seed

    def sampler_state(self) -> list[Tensor]:
        return generator_states(self.generators)

    def set_sampler_state(self, states: list[Any]) -> None:
        set_generator_states(self.generators, states, "sampler")

    @property
    def size(self) -> int:
        """Rows filled so far (the first `size` rows)."""
        return self._size

    @size.setter
    def size(self, value: int) -> None:
        self._size = value
        self.filled.fill_(value)

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Each field's per-row shape, in the packed rows' order."""
        return self._shapes

    @property
    def observations(self) -> Tensor:
        return self._views[0]

    @property
    def actions(self) -> Tensor:
        return self._views[1]

    @property
    def rewards(self) -> Tensor:
        return self._views[2]

    @property
    def next_observations(self) -> Tensor:
        return self._views[3]

    @property
    def dones(self) -> Tensor:
        return self._views[4]

    @property
    def next_actions(self) -> Tensor | None:
        return self._views[5] if len(self._views) > 5 else None

    def add(
        self,
        obs: Tensor,
        action: Tensor,
        reward: Tensor,
        next_obs: Tensor,
        done: Tensor,
        next_action: Tensor | None = None,
    ) -> None:
        """Append a batch of transitions (leading dimension = number of transitions);
        `next_action` exactly when the buffer was made `with_next_actions`."""
        n = obs.shape[0]
        if self.size + n > self.capacity:
            raise ValueError(
                f"replay buffer full: capacity {self.capacity}, adding {n} to {self.size}"
            )
        values = [obs, action, reward, next_obs, done]
        values += [] if next_action is None else [next_action]
        new_rows = [view[self.size : self.size + n] for view in self._views]
        if len(values) != len(new_rows):
            raise ValueError(f"this buffer holds {len(new_rows)} fields per row, got {len(values)}")
        for field, value in zip(new_rows, values, strict=True):
            field.copy_(value)
        self.size += n

    def sample(self, batch_size: int) -> Batch:
        """`batch_size` uniform indices per seed, each seed's drawn on the buffer's device from
        its own generator."""
        idx = [
            torch.randint(0, self.size, (batch_size,), device=self.device, generator=g)
            for g in self.generators
        ]
        return self._gather(torch.stack(idx))

    def sample_filled(self, batch_size: int) -> Batch:
        """Uniform over the rows filled so far, counted on the device (`filled`) instead of the
        host: a buffer that grows between replays of a captured CUDA graph (the online SAC) is
        sampled right. Draws from the same generators, mapped by a modulo (bias below 2^-40)."""
        idx = [
            torch.randint(0, 2**62, (batch_size,), device=self.device, generator=g)
            for g in self.generators
        ]
        return self._gather(torch.stack(idx).remainder_(self.filled))

    def in_order(self, seeds: int, chunk: int) -> Iterator[tuple[Batch, int]]:
        """Every filled row once, in order, `chunk` at a time, the same rows for each of `seeds`
        seeds: (batch (seeds, n, ...), n). Validation losses average over them."""
        for start in range(0, self.size, chunk):
            rows = slice(start, min(start + chunk, self.size))
            part = self.rows[rows]
            images = None
            if self.images is not None:
                images = (
                    self.images[0][rows].expand(seeds, -1, -1),
                    self.images[1][rows].expand(seeds, -1, -1),
                )
            fields = row_fields(part.expand(seeds, -1, -1), self._shapes)
            yield Batch(*self._with_images(fields, images)), part.shape[0]

    def _gather(self, idx: Tensor) -> Batch:
        # One index_select for all seeds: faster than rows[idx] on CPU (no advanced-indexing setup).
        flat = idx.flatten()
        rows = torch.index_select(self.rows, 0, flat).view(*idx.shape, -1)
        images = None
        if self.images is not None:
            images = (
                torch.index_select(self.images[0], 0, flat).view(*idx.shape, -1),
                torch.index_select(self.images[1], 0, flat).view(*idx.shape, -1),
            )
        return Batch(*self._with_images(row_fields(rows, self._shapes), images))

    @staticmethod
    def _with_images(fields: list[Tensor], images: tuple[Tensor, Tensor] | None) -> list[Tensor]:
        """Packed fields (actions, rewards, dones[, next_actions]) with an image's observations
        put back in Batch order; the fields as they are without images."""
        if images is None:
            return fields
        return [images[0], fields[0], fields[1], images[1], *fields[2:]]
