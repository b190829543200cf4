"""Where training time goes: wall-clock per phase (sampling, update, evaluation) for every run, and
on request a PyTorch profiler trace of a few steps that splits the update into forward,
backward and optimiser step (chrome://tracing or https://ui.perfetto.dev open the trace)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function, schedule

from core.atomic import atomic_path

# Steps skipped before tracing (allocator and kernel caches warm up), then traced.
TRACE_WAIT, TRACE_WARMUP = 5, 2


class Profiler:
    """Phase timer for the training loop; with `trace_path` also a torch.profiler window.

    Without a trace the timer only reads the clock: no device sync, so on a GPU `update` measures
    kernel launches. With a trace each phase ends with a device sync, so times are true but the
    run is slower: profile on purpose, not by default.
    """

    def __init__(
        self, device: torch.device, trace_path: Path | None = None, trace_steps: int = 20
    ) -> None:
        self.device = device
        self.trace_path = trace_path
        self.totals: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.window: dict[str, float] = defaultdict(float)
        self.traced: dict[str, float] = {}
        self._torch: Any = None
        if trace_path is not None:
            activities = [ProfilerActivity.CPU]
            if device.type == "cuda":
                activities.append(ProfilerActivity.CUDA)
            self._torch = profile(
                activities=activities,
                schedule=schedule(wait=TRACE_WAIT, warmup=TRACE_WARMUP, active=trace_steps),
                on_trace_ready=self._save_trace,
            )

    @property
    def tracing(self) -> bool:
        return self._torch is not None

    def __enter__(self) -> Profiler:
        if self._torch is not None:
            self._torch.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._torch is not None:
            self._torch.__exit__(kind, error, tb)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        if self._torch is None:
            yield
        else:
            with record_function(name):
                yield
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
        elapsed = time.perf_counter() - started
        self.totals[name] += elapsed
        self.window[name] += elapsed
        self.counts[name] += 1

    def step(self) -> None:
        if self._torch is not None:
            self._torch.step()

    def take_window(self) -> dict[str, float]:
        """Seconds per phase since the last call (for throughput logged every log_interval)."""
        window, self.window = dict(self.window), defaultdict(float)
        return window

    def _save_trace(self, prof: Any) -> None:
        assert self.trace_path is not None
        with atomic_path(self.trace_path, suffix=".json") as tmp:
            prof.export_chrome_trace(str(tmp))
        self.traced = split_update(prof.key_averages())

    def summary(self) -> dict[str, Any]:
        """Seconds and share of wall time per phase; the traced split of the update if any."""
        total = sum(self.totals.values())
        out: dict[str, Any] = {"traced": self.tracing}
        for name, seconds in sorted(self.totals.items()):
            out[f"{name}_s"] = seconds
            out[f"{name}_fraction"] = seconds / total if total > 0 else 0.0
            out[f"{name}_calls"] = self.counts[name]
        out |= {f"trace/{k}": v for k, v in self.traced.items()}
        return out


def split_update(averages: Any) -> dict[str, float]:
    """Seconds inside the traced window: update = forward (and bookkeeping) + backward + optimiser.

    Backward ops run as `autograd::engine::evaluate_function: ...` events, each top level in the
    autograd thread, so their totals add up without double counting; likewise `Optimizer.step#`.
    """
    update = backward = optimizer = sample = 0.0
    for event in averages:
        seconds = event.cpu_time_total / 1e6
        if event.key == "update":
            update += seconds
        elif event.key == "sample":
            sample += seconds
        elif event.key.startswith("autograd::engine::evaluate_function"):
            backward += seconds
        elif event.key.startswith("Optimizer.step#"):
            optimizer += seconds
    return {
        "sample_s": sample,
        "update_s": update,
        "backward_s": backward,
        "optimizer_step_s": optimizer,
        "forward_and_other_s": max(update - backward - optimizer, 0.0),
    }
