"""Where shards run: a local process pool (default) or a Ray cluster, behind one function.

Both backends return every shard's arrays to the driver, which saves each as soon as it arrives
(the resume point) and then hands them over in shard order, one at a time, so memory stays bounded
by a shard whatever the dataset size.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from core.errors import PipelineError
from datagen.collection.shards import (
    ShardArrays,
    ShardJob,
    load_shard,
    run_shard,
    save_shard,
    shard_path,
)

log = logging.getLogger(__name__)

Backend = Literal["process", "ray"]


class BackendError(PipelineError, ValueError):
    """The chosen backend cannot run (Ray missing, cluster unreachable)."""


@dataclass(frozen=True)
class BackendConfig:
    backend: Backend = "process"
    workers: int = 2
    ray_address: str | None = None  # None: start a local Ray instance; "auto" or host:port joins


def collect_shards(
    jobs: list[ShardJob], shards_dir: Path, config: BackendConfig
) -> Iterator[ShardArrays]:
    """Yield every job's arrays in job order, reusing shards a killed run already saved."""
    missing = [job for job in jobs if load_shard(shard_path(shards_dir, job), job) is None]
    if missing:
        log.info(
            "%d of %d shards to collect (%s, %d workers)",
            len(missing),
            len(jobs),
            config.backend,
            config.workers,
        )

        def save(job: ShardJob, arrays: ShardArrays) -> None:
            save_shard(shard_path(shards_dir, job), job, arrays)

        if config.backend == "ray":
            _run_ray(missing, config, save)
        elif config.workers == 1:
            _run_inline(missing, save)
        else:
            _run_processes(missing, config, save)
    for job in jobs:
        arrays = load_shard(shard_path(shards_dir, job), job)
        if arrays is None:
            raise RuntimeError(f"{shard_path(shards_dir, job)}: shard missing after collection")
        yield arrays


def _run_inline(jobs: list[ShardJob], save: Callable[[ShardJob, ShardArrays], None]) -> None:
    """One worker: no pool to spawn; the same single-threaded computation as in a worker."""
    threads = torch.get_num_threads()
    try:
        for job in jobs:
            save(job, run_shard(job))
    finally:
        torch.set_num_threads(threads)


def _run_processes(
    jobs: list[ShardJob], config: BackendConfig, save: Callable[[ShardJob, ShardArrays], None]
) -> None:
    # spawn, not fork: torch and MuJoCo state must not be copied from a parent mid-flight.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=config.workers, mp_context=context) as pool:
        pending: dict[Future[ShardArrays], ShardJob] = {pool.submit(run_shard, j): j for j in jobs}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                save(pending.pop(future), future.result())


def _run_ray(
    jobs: list[ShardJob], config: BackendConfig, save: Callable[[ShardJob, ShardArrays], None]
) -> None:
    try:
        import ray
    except ImportError:
        raise BackendError(
            "collect.backend is ray but Ray is not installed: pip install -e '.[ray]'"
        ) from None
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"log_to_driver": False}
        if config.ray_address:
            kwargs["address"] = config.ray_address
        else:
            kwargs["num_cpus"] = config.workers
        try:
            ray.init(**kwargs)
        except ConnectionError as error:
            raise BackendError(
                f"collect.ray_address {config.ray_address!r}: cannot join the Ray cluster ({error})"
            ) from None
    try:
        remote = ray.remote(num_cpus=1)(run_shard)
        pending = {remote.remote(job): job for job in jobs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                save(pending.pop(ref), ray.get(ref))
    finally:
        if started_here:
            ray.shutdown()
