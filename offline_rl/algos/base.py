"""The algorithm contract. Algorithms implement it structurally; nothing is inherited."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor

from offline_rl.buffer import Batch
from offline_rl.config import StrictModel


class AlgoConfig(StrictModel):
    """Base of algorithm configs. Learning-rate fields listed in LR_FIELDS may be None, which means
    'use the top-level `lr` from params.yaml' (so `dvc exp run -S lr=...` reaches them)."""

    LR_FIELDS: ClassVar[tuple[str, ...]] = ()

    def with_default_lr(self, lr: float) -> AlgoConfig:
        unset = {name: lr for name in self.LR_FIELDS if getattr(self, name) is None}
        return self.model_copy(update=unset)

    def lr(self, name: str) -> float:
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"{type(self).__name__}.{name} unresolved: call with_default_lr first")
        return float(value)


class Algorithm(Protocol):
    """update() returns detached scalar tensors so the hot loop never waits on the device."""

    config: Any

    def __init__(self, obs_dim: int, act_dim: int, config: Any, device: torch.device) -> None: ...

    def update(self, batch: Batch) -> dict[str, Tensor]: ...

    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
