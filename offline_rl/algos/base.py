"""The algorithm contract. Algorithms implement it structurally; nothing is inherited."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import Tensor


def parts_state(owner: object, parts: tuple[str, ...]) -> dict[str, Any]:
    """An algorithm's state_dict: each named attribute's state (networks and optimisers through
    their own state_dict, bare tensors such as a log-temperature by value) and its update counter
    `step` where it keeps one. Checkpoints hold exactly this."""
    state: dict[str, Any] = {}
    for name in parts:
        part = getattr(owner, name)
        state[name] = part.detach().clone() if isinstance(part, Tensor) else part.state_dict()
    if hasattr(owner, "step"):
        state["step"] = owner.step
    return state


def load_parts(owner: object, parts: tuple[str, ...], state: dict[str, Any]) -> None:
    """Inverse of parts_state; a missing part raises KeyError naming it."""
    for name in parts:
        part = getattr(owner, name)
        if isinstance(part, Tensor):
            with torch.no_grad():
                part.copy_(state[name])
        else:
            part.load_state_dict(state[name])
    if hasattr(owner, "step"):
        owner.step = int(state["step"])  # type: ignore[attr-defined]


class Algorithm(Protocol):
    """An algorithm trains the networks of S seeds at once (`seeds`, S = 1 for a single run):
    batches arrive with a leading seed dimension (offline_rl/buffer.py: fields (S, B, ...)), and
    every loss is taken per seed, as the sum over seeds of each seed's own mean, so that each
    seed's gradients and (fused, elementwise) Adam steps are exactly those of a run of that seed
    alone. The random numbers an update draws come from its `SeedNoise`, one stream per seed.

    update() returns detached per-seed tensors (S,) so the hot loop never waits on the device;
    the loop keeps the latest value of each (an actor updated every other step reports every
    other step). validation_losses() gives per-seed losses on held-out data, without learning.

    So that the update can be captured once as a CUDA graph and replayed (offline_rl/cuda_graph.py),
    it also keeps to these rules, which every algorithm here follows:
    - no host-device synchronisation (no .item(), no data-dependent Python branches);
    - the only Python state it changes is an update counter `step`, where it keeps one, by +1;
      anything else that changes from step to step (IQL's learning-rate schedule) is a tensor
      changed in place;
    - where the work done depends on `step` (TD3+BC's delayed actor), `graph_key()` returns a
      value naming the branch the next update takes; one graph is captured per value.

    Parts of an update that do not depend on each other may run on a `SideStream`
    (offline_rl/side_stream.py), concurrently on a GPU; the update joins every side stream before it
    returns.
    """

    config: Any
    seeds: int

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        config: Any,
        device: torch.device,
        seeds: Sequence[int],
    ) -> None: ...

    # The algorithm's own kind of batch: rows (transitions.loader.Batch) or, for a sequence model
    # (one with a `context`), windows (offline_rl/windows.py's WindowBatch).
    def update(self, batch: Any) -> dict[str, Tensor]: ...

    def validation_losses(self, batch: Any) -> dict[str, Tensor]: ...

    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
