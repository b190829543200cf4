"""Windows of consecutive steps of one episode, for sequence models (Decision Transformer), sampled
on the training device without a host round trip.

A window is the `context` steps of an episode that end at a row drawn uniformly over all rows, so
every step is the last step of exactly one window, which is what the model sees when it acts at
that step (offline_rl/context.py keeps the same window at evaluation). Where the episode began less
than `context` steps before that row, the window is padded at its start: `mask` is False there and
the padded steps are zeros with timestep 0. The original Decision Transformer draws an episode in
proportion to its length and a start step uniformly within it, padding at the start too; drawing
the end step instead makes the short windows those at episode starts, as at evaluation, rather than
those at episode ends.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from offline_rl.seeds import SAMPLER, generator_states, generators, set_generator_states
from transitions.loader import Transitions, WindowBatch, packed_rows, row_fields


def episode_starts(episode_ids: Tensor) -> Tensor:
    """The first row of each row's episode, (N,) int64 (rows of an episode are contiguous)."""
    rows = torch.arange(len(episode_ids), device=episode_ids.device)
    first = torch.ones_like(episode_ids, dtype=torch.bool)
    first[1:] = episode_ids[1:] != episode_ids[:-1]
    return torch.where(first, rows, 0).cummax(0).values


class WindowBuffer:
    """The rows of a transitions file as windows: observations, actions and returns-to-go side by
    side in one (N, width) tensor on one device, so that a batch of windows is one gather; each
    training seed draws its window ends from its own generator, as ReplayBuffer does its rows."""

    def __init__(self, data: Transitions, context: int, seeds: Sequence[int] = (0,)) -> None:
        if data.episode_ids is None or data.returns_to_go is None:
            raise ValueError(
                "windows need the rows' episode ids and returns-to-go (load_transitions)"
            )
        if data.meta.discrete_actions:
            raise ValueError("windows hold Box actions; this file's actions are Discrete")
        if context < 1:
            raise ValueError(f"a window holds at least one step, not {context}")
        self.context = context
        self._shapes: list[tuple[int, ...]] = [(data.meta.obs_dim,), (data.meta.act_dim,), ()]
        device = data.observations.device
        self.rows, views = packed_rows(len(data), self._shapes, device)
        for view, field in zip(
            views, (data.observations, data.actions, data.returns_to_go), strict=True
        ):
            view.copy_(field)
        self.starts = episode_starts(data.episode_ids)
        self.device = device
        self.size = len(data)
        self.generators = generators(seeds, SAMPLER, device)
        self._offsets = torch.arange(1 - context, 1, device=device)  # -(K-1) .. 0

    def sampler_state(self) -> list[Tensor]:
        return generator_states(self.generators)

    def set_sampler_state(self, states: list[Any]) -> None:
        set_generator_states(self.generators, states, "sampler")

    def sample(self, batch_size: int) -> WindowBatch:
        """`batch_size` windows per seed, their last steps uniform over all rows."""
        ends = [
            torch.randint(0, self.size, (batch_size,), device=self.device, generator=g)
            for g in self.generators
        ]
        return self.windows(torch.stack(ends))

    def windows(self, ends: Tensor) -> WindowBatch:
        """The windows whose last steps are rows `ends` (any shape), padded where their episode
        starts inside them."""
        start = self.starts[ends].unsqueeze(-1)
        steps = ends.unsqueeze(-1) + self._offsets
        mask = steps >= start
        steps = torch.maximum(steps, start)  # padding reads the episode's first row, then zeroed
        rows = torch.index_select(self.rows, 0, steps.flatten()).view(*steps.shape, -1)
        rows = rows * mask.unsqueeze(-1)
        observations, actions, returns_to_go = row_fields(rows, self._shapes)
        return WindowBatch(observations, actions, returns_to_go, steps - start, mask)

    def in_order(self, seeds: int, chunk: int) -> Iterator[tuple[WindowBatch, int]]:
        """Every row's window once, in row order, `chunk` at a time, the same windows for each of
        `seeds` seeds: (windows (seeds, n, K, ...), n). Validation losses average over them."""
        for first in range(0, self.size, chunk):
            ends = torch.arange(first, min(first + chunk, self.size), device=self.device)
            yield self.windows(ends.expand(seeds, -1)), len(ends)
