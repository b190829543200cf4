"""Where the training rows live (`train.storage`): `memory` loads the split onto the training
device once (`load_transitions` + `ReplayBuffer`); `disk` leaves them in the memory-mapped file and
gathers each batch's rows (`DiskReplayBuffer`); both give the same batches. `auto` takes disk
when the file's rows would need more than `MEMORY_SHARE` of the memory available on the training
device, and logs why it chose either.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import psutil
import torch

from core.config import ConfigError
from offline_rl.buffer import ReplayBuffer
from offline_rl.disk_buffer import DiskReplayBuffer
from offline_rl.windows import WindowBuffer
from transitions.loader import load_transitions
from transitions.metadata import TransitionsMeta

log = logging.getLogger(__name__)

Storage = Literal["memory", "disk", "auto"]
# Half of what is available: the rest is left to the networks, their optimiser state and
# activations, evaluation's environments, the page cache and the machine's other processes.
MEMORY_SHARE = 0.5


def memory_bytes(meta: TransitionsMeta) -> int:
    """What memory storage allocates for the file's rows on the device, every split counted:
    the packed float32 row fields (observations, actions, reward, next observations, done, next
    actions) plus returns-to-go (float32) and episode ids (int64), which loading also makes; an
    image's observations as their uint8 bytes beside the packed rows."""
    if meta.observation_image:
        packed = 2 * meta.act_dim + 2
        return meta.size * (4 * packed + 2 * meta.obs_dim + 4 + 8)
    packed = 2 * meta.obs_dim + 2 * meta.act_dim + 2
    return meta.size * (4 * packed + 4 + 8)


def available_bytes(device: torch.device) -> int:
    """Free memory of a CUDA device, or the host's MemAvailable (memory that can be had
    without swapping, page cache included)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return int(psutil.virtual_memory().available)


def choose_storage(
    storage: Storage, meta: TransitionsMeta, device: torch.device, available: int | None = None
) -> Literal["memory", "disk"]:
    """`storage` itself, or for `auto` the rule above; `available` overrides the measurement."""
    need = memory_bytes(meta)
    if meta.observation_image and storage != "memory":
        # The memory-mapped path gathers packed float rows; images have no path there yet.
        have = available_bytes(device) if available is None else available
        if storage == "disk" or need > MEMORY_SHARE * have:
            raise ConfigError(
                f"train.storage: {storage}: {meta.dataset_ids} hold uint8 images "
                f"{meta.observation_image}, which only memory storage trains on "
                f"(their rows take {need / 1e9:.2f} GB, {have / 1e9:.2f} GB available on {device})"
            )
        log.info("train.storage: auto -> memory: image rows (%.2f GB)", need / 1e9)
        return "memory"
    if storage != "auto":
        log.info("train.storage: %s (the file's rows take %.2f GB in memory)", storage, need / 1e9)
        return storage
    have = available_bytes(device) if available is None else available
    chosen: Literal["memory", "disk"] = "disk" if need > MEMORY_SHARE * have else "memory"
    log.info(
        "train.storage: auto -> %s: the file's %d rows take %.2f GB in memory, %s than %.0f%% of "
        "the %.2f GB available on %s",
        chosen,
        meta.size,
        need / 1e9,
        "more" if chosen == "disk" else "no more",
        100 * MEMORY_SHARE,
        have / 1e9,
        device,
    )
    return chosen


def open_buffer(
    path: Path,
    storage: Literal["memory", "disk"],
    device: torch.device,
    seeds: tuple[int, ...],
    context: int | None = None,
) -> ReplayBuffer | DiskReplayBuffer | WindowBuffer:
    """The training split's sampler in the chosen storage: of rows or, with `context` (a sequence
    model's), of windows of that many steps; the same batches in either storage."""
    if storage == "disk":
        return DiskReplayBuffer(path, device, seeds, split="train", context=context)
    data = load_transitions(path, device, split="train")
    if context is not None:
        return WindowBuffer(data, context, seeds)
    return ReplayBuffer.from_transitions(data, seeds)
