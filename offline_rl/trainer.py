"""The offline training loop shared by every algorithm: sampling on device, periodic logging and
evaluation, atomic checkpoints with RNG state, resume, and a guard against diverging losses."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from core.checkpoint import rng_state, seed_everything, set_rng_state
from core.errors import PipelineError
from core.resume import load_resume_state, save_resume_state
from offline_rl.algos.base import Algorithm
from offline_rl.buffer import ReplayBuffer
from offline_rl.config import LoopConfig
from offline_rl.cuda_graph import GraphedTrainStep
from offline_rl.disk_buffer import DiskReplayBuffer
from offline_rl.profiling import Profiler
from offline_rl.speed import accelerate, denormals_flushed
from offline_rl.tracking import SeedsLogger
from offline_rl.windows import WindowBuffer
from transitions.loader import Transitions

log = logging.getLogger(__name__)


class TrainingDiverged(PipelineError, RuntimeError):
    """A loss became NaN/inf; the message names the step, the seed and the last good checkpoint."""


PerSeed = list[dict[str, float]]  # one dict of metrics per seed, in the run's seed order
EvalFn = Callable[[int], PerSeed]
LoggerFactory = Callable[[list[str | None] | None], SeedsLogger]
# Where batches come from: rows (in memory or memory-mapped) or, for sequence models, windows.
Sampler = ReplayBuffer | DiskReplayBuffer | WindowBuffer


def train(
    algo: Algorithm,
    algo_name: str,
    buffer: Sampler,
    loop: LoopConfig,
    checkpoint_path: Path,
    run_fingerprint: str,
    logger_factory: LoggerFactory,
    evaluate: EvalFn,
    progress: bool = True,
    profiler: Profiler | None = None,
    validation: Transitions | None = None,
) -> tuple[SeedsLogger, PerSeed]:
    """Run (or resume) `loop.steps` gradient steps of every seed the algorithm trains; returns the
    open logger and the last evaluation, per seed. With `validation` (held-out episodes), each
    evaluation also logs the algorithm's validation losses on all of them (`val/...`)."""
    seed_everything(0)  # nothing an update does draws from the global RNGs; anything else is fixed
    start_step: int = 0
    run_ids: list[str | None] | None = None
    history: dict[str, list[dict[str, float]]] = {}
    resumed = load_resume_state(checkpoint_path, run_fingerprint, {"algo": algo_name})
    if resumed is not None:
        algo.load_state_dict(resumed["algo_state"])
        buffer.set_sampler_state(resumed["sampler_rng"])
        set_rng_state(resumed["rng"])
        start_step, run_ids, history = resumed["step"], resumed["wandb_run_ids"], resumed["history"]
        log.info("resuming %s from step %d (%s)", algo_name, start_step, checkpoint_path)
    logger = logger_factory(run_ids)
    logger.restore(history, start_step)

    update = accelerate(algo, loop.compile, loop.precision, buffer.device)
    graphed = None
    on_cuda = loop.cuda_graph and buffer.device.type == "cuda"
    if on_cuda and isinstance(buffer, DiskReplayBuffer):
        # A graph replays its sampling from device memory; disk batches are gathered on the host.
        log.info("cuda_graph does not apply to train.storage: disk; training eagerly")
    elif on_cuda:
        graphed = GraphedTrainStep(
            algo,
            lambda: buffer.sample(loop.batch_size),
            update,
            [*buffer.generators, *random_generators(algo)],
        )
    elif loop.cuda_graph:
        log.info("cuda_graph applies to CUDA devices; training on %s eagerly", buffer.device)
    seeds = len(logger.seeds)
    last_eval: PerSeed = [{} for _ in range(seeds)]
    for row in history.get("eval", []):  # a resumed run's last evaluation, until the next one
        last_eval[logger.seeds.index(int(row["seed"]))] = {
            k: v for k, v in row.items() if k not in ("step", "seed")
        }

    def evaluate_all(step: int) -> PerSeed:
        results = evaluate(step)
        if validation is not None:
            losses = validation_losses(algo, validation)
            results = [
                r | {f"val/{k}": v[i] for k, v in losses.items()} for i, r in enumerate(results)
            ]
        return results

    profiler = profiler or Profiler(torch.device("cpu"))
    bar = tqdm(
        range(start_step + 1, loop.steps + 1),
        initial=start_step,
        total=loop.steps,
        desc=f"train {algo_name} x{seeds} seeds",
        disable=not progress,
        mininterval=2.0,
    )
    with profiler, denormals_flushed(loop.flush_denormals):
        last_eval = _loop(
            algo,
            update,
            graphed,
            algo_name,
            buffer,
            loop,
            checkpoint_path,
            run_fingerprint,
            logger,
            evaluate_all,
            profiler,
            bar,
            last_eval,
        )
    bar.close()
    return logger, last_eval


def random_generators(algo: Algorithm) -> list[torch.Generator]:
    """The generators an update draws from (its SeedNoise), which a CUDA graph must register."""
    noise = getattr(algo, "noise", None)
    return list(noise.generators) if noise is not None else []


@torch.no_grad()
def validation_losses(
    algo: Algorithm, data: Transitions, chunk: int = 8192
) -> dict[str, list[float]]:
    """The algorithm's validation losses averaged over every held-out row (no sampling noise),
    per seed: the same rows go to every seed's networks, as rows or, for a sequence model (one
    with a `context`), as the window ending at each row."""
    context = getattr(algo, "context", None)
    held_out = (
        ReplayBuffer.from_transitions(data) if context is None else WindowBuffer(data, context)
    )
    totals: dict[str, Tensor] = {}
    for batch, rows in held_out.in_order(algo.seeds, chunk):
        for name, value in algo.validation_losses(batch).items():
            totals[name] = totals.get(name, 0.0) + value * rows
    return {name: (total / len(data)).tolist() for name, total in totals.items()}


def _loop(
    algo: Algorithm,
    update: Callable[[Any], dict[str, torch.Tensor]],
    graphed: GraphedTrainStep | None,
    algo_name: str,
    buffer: Sampler,
    loop: LoopConfig,
    checkpoint_path: Path,
    run_fingerprint: str,
    logger: SeedsLogger,
    evaluate: EvalFn,
    profiler: Profiler,
    bar: Any,
    last_eval: PerSeed,
) -> PerSeed:
    window_start, window_steps = time.perf_counter(), 0
    metrics: dict[str, torch.Tensor] = {}  # latest value of each: some are not every step's
    for step in bar:
        if graphed is not None:  # sampling is inside the graph
            with profiler.phase("update"):
                metrics.update(graphed())
        else:
            with profiler.phase("sample"):
                batch = buffer.sample(loop.batch_size)
            with profiler.phase("update"):
                metrics.update(update(batch))
        profiler.step()
        window_steps += 1
        is_last = step == loop.steps
        log_now = step % loop.log_interval == 0 or is_last
        checkpoint_now = step % loop.checkpoint_interval == 0 or is_last
        if log_now or checkpoint_now:
            # the only device sync: each metric's value for every seed
            per_seed = [{k: float(v[i]) for k, v in metrics.items()} for i in range(algo.seeds)]
            check_finite(per_seed, logger.seeds, algo_name, step, checkpoint_path)
        if log_now:
            speed = throughput(
                profiler.take_window(), window_steps, time.perf_counter() - window_start
            )
            logger.log("train", step, [values | speed for values in per_seed])
            window_start, window_steps = time.perf_counter(), 0
        if step % loop.eval_interval == 0 or is_last:
            eval_started = time.perf_counter()
            with profiler.phase("evaluate"):
                results = evaluate(step)
            took = {"perf/eval_s": time.perf_counter() - eval_started}
            last_eval = [result | took for result in results]
            logger.log("eval", step, last_eval)
            window_start = time.perf_counter()  # evaluation time is not training throughput
        if checkpoint_now:
            save_resume_state(
                checkpoint_path,
                run_fingerprint,
                {
                    "algo": algo_name,
                    "step": step,
                    "seeds": list(logger.seeds),
                    "algo_state": algo.state_dict(),
                    "sampler_rng": buffer.sampler_state(),
                    "rng": rng_state(),
                    "wandb_run_ids": logger.run_ids,
                    "history": logger.history,
                },
            )
    return last_eval


def check_finite(
    per_seed: PerSeed, seeds: tuple[int, ...], algo_name: str, step: int, checkpoint_path: Path
) -> None:
    """Stop before any checkpoint is written, so the last one stays good."""
    for seed, values in zip(seeds, per_seed, strict=True):
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            last_good = checkpoint_path if checkpoint_path.exists() else "none"
            raise TrainingDiverged(
                f"{algo_name}: {', '.join(bad)} became non-finite at step {step} (seed {seed}); "
                f"last good checkpoint: {last_good}. Lower the learning rate or check the data."
            )


def throughput(window: dict[str, float], steps: int, elapsed: float) -> dict[str, float]:
    """Gradient steps per second of wall time, and how that time splits into sampling/updating."""
    sample, update = window.get("sample", 0.0), window.get("update", 0.0)
    return {
        "perf/grad_steps_per_s": steps / max(elapsed, 1e-9),
        "perf/sample_s": sample,
        "perf/update_s": update,
        "perf/sample_fraction": sample / max(sample + update, 1e-9),
    }
