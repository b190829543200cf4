"""Training seeds as a batch dimension: per-seed random streams, and stacking the networks of
single-seed runs into one S-seed run (and back), so that seed k of an S-seed run is exactly the
single-seed run with seed k.

Each seed owns its random numbers: its initial weights come from `torch.manual_seed` of its own
init stream, its batches from its own sampler generator, and the noise its update draws
(exploration, target smoothing, CQL's action samples) from its own `SeedNoise` stream. Streams are
derived from (seed, purpose) with numpy's SeedSequence, so they never overlap across purposes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

INIT, SAMPLER, NOISE = 0, 1, 2  # the purposes a seed's streams serve


def stream_seed(seed: int, purpose: int) -> int:
    """A 63-bit seed for one purpose of one training seed."""
    return int(np.random.SeedSequence([seed, purpose]).generate_state(2, np.uint64)[0] >> 1)


def generators(seeds: Sequence[int], purpose: int, device: torch.device) -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(stream_seed(s, purpose)) for s in seeds]


def generator_states(gens: Sequence[torch.Generator]) -> list[Tensor]:
    return [g.get_state() for g in gens]


def set_generator_states(gens: Sequence[torch.Generator], states: Sequence[Any], what: str) -> None:
    """Each generator back to its saved state; as many states as generators, else a ValueError
    naming `what` (a sampler's, a noise stream's)."""
    if len(states) != len(gens):
        raise ValueError(f"{what} state of {len(states)} seeds for {len(gens)}")
    for generator, state in zip(gens, states, strict=True):
        generator.set_state(state)


class SeedNoise:
    """One random stream per seed on the training device: `randn(shape)` is (S, *shape), slice k
    drawn from seed k's stream, so a seed's draws do not depend on which other seeds run."""

    def __init__(self, seeds: Sequence[int], device: torch.device) -> None:
        self.device = torch.device(device)
        self.generators = generators(seeds, NOISE, self.device)

    def randn(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.stack(
            [
                torch.randn(tuple(shape), generator=g, device=self.device, dtype=dtype)
                for g in self.generators
            ]
        )

    def rand(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.stack(
            [
                torch.rand(tuple(shape), generator=g, device=self.device, dtype=dtype)
                for g in self.generators
            ]
        )

    def keep_mask(
        self, shape: Sequence[int], p: float, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """Inverted dropout's multiplier (S, *shape): 1 / (1 - p) where kept, 0 where dropped,
        one seed's slice from its own stream. Each element compares 16 random bits with p, four
        elements to one 64-bit draw: a third of the time of torch's bernoulli_ on CPU, which
        draws per element (measured: docs/performance.md); p is rounded to a multiple of 2^-16."""
        count = math.prod(shape)
        threshold = -(2**15) + round(p * 2**16)  # P(16 random bits as int16 < threshold) = p
        mask = torch.empty((len(self.generators), *shape), device=self.device, dtype=dtype)
        for part, generator in zip(mask, self.generators, strict=True):
            words = torch.empty((count + 3) // 4, dtype=torch.int64, device=self.device)
            words.random_(-(2**63), 2**63 - 1, generator=generator)
            part.copy_(words.view(torch.int16)[:count].view(part.shape) >= threshold)
        return mask.mul_(1.0 / (1.0 - p))

    def state_dict(self) -> dict[str, Any]:
        return {"generators": generator_states(self.generators)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_generator_states(self.generators, state["generators"], "noise")


def stack_seed_tensors(tensors: Sequence[Tensor]) -> Tensor:
    """Single-seed tensors (E, ...) -> the S-seed tensor (E * S, ...), member-major; a 0-d tensor
    is shared by all seeds (an update count) and is taken from the first."""
    if tensors[0].dim() == 0:
        return tensors[0]
    return torch.stack(list(tensors), dim=1).flatten(0, 1)


def seed_slice(tensor: Tensor, seed_index: int, seeds: int) -> Tensor:
    """Inverse of stack_seed_tensors: one seed's (E, ...) from the S-seed (E * S, ...)."""
    if tensor.dim() == 0:
        return tensor
    return tensor.unflatten(0, (-1, seeds))[:, seed_index]


def network_parts(algo: Any) -> dict[str, nn.Module | Tensor]:
    """The networks (and bare learned tensors such as a log-temperature) an algorithm holds: what
    an agent file saves. Optimisers and random streams are training state, not the agent."""
    return {
        name: value
        for name, value in vars(algo).items()
        if isinstance(value, nn.Module) or (isinstance(value, Tensor) and value.requires_grad)
    }


def networks_state(algo: Any) -> dict[str, Any]:
    return {
        name: part.state_dict() if isinstance(part, nn.Module) else part.detach().clone()
        for name, part in network_parts(algo).items()
    }


def load_networks_state(algo: Any, state: dict[str, Any]) -> None:
    parts = network_parts(algo)
    missing = sorted(set(parts) - set(state))
    if missing:
        raise KeyError(f"networks missing from the saved state: {missing}")
    with torch.no_grad():
        for name, part in parts.items():
            if isinstance(part, nn.Module):
                part.load_state_dict(state[name])
            else:
                part.copy_(state[name])


def stack_networks(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Single-seed networks states -> the S-seed one."""
    stacked: dict[str, Any] = {}
    for name, first in states[0].items():
        if isinstance(first, Tensor):
            stacked[name] = stack_seed_tensors([s[name] for s in states])
        else:
            stacked[name] = {
                key: stack_seed_tensors([s[name][key] for s in states]) for key in first
            }
    return stacked


def unstack_networks(state: dict[str, Any], seed_index: int, seeds: int) -> dict[str, Any]:
    """One seed's networks state out of an S-seed one."""
    return {
        name: seed_slice(part, seed_index, seeds).clone()
        if isinstance(part, Tensor)
        else {key: seed_slice(t, seed_index, seeds).clone() for key, t in part.items()}
        for name, part in state.items()
    }
