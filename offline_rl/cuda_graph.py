"""The training step, batch sampling included, captured as CUDA graphs and replayed.

An update of 256x256 MLPs at batch 256 is a few hundred kernels of a few microseconds each, and
launching one from Python costs about as long as running it, so an eager GPU update runs at the
speed of the interpreter. Capturing the step once (`torch.cuda.CUDAGraph`) and replaying it
launches all of its kernels with one call. A graph holds the addresses of every tensor it touches,
hence:
- sampling runs inside the graph (no batch is copied in): the step is `update(sample())`;
- the optimisers are switched to their capturable form (step counts and bias corrections on the
  device);
- every generator the step draws from is registered with the graph, so that each replay draws new
  random numbers, continuing the generator's sequence exactly where eager steps would;
- the returned metrics are the graph's output tensors, rewritten by every replay.

The update keeps to the rules of `offline_rl.algos.base.Algorithm`. The first update of each
`graph_key()` runs eagerly on a side stream, as capture requires of warm-up (it creates optimiser
state and lets cuBLAS pick its kernels); the next one with that key is captured (which runs the
Python once and no kernel; the Python state it changes is put back) and every later one is a
replay. A failed capture raises GraphCaptureError with the error from inside the update: it
means the update breaks one of those rules (a failed capture also leaves the registered random
generators unusable, so there is no eager fallback within the process).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch
from torch import Tensor

from offline_rl.algos.base import Algorithm
from offline_rl.speed import UpdateFn
from transitions.loader import TrainBatch

Metrics = dict[str, Tensor]


class GraphCaptureError(RuntimeError):
    """The update could not be captured; the message names the algorithm and the first error."""


class GraphedTrainStep:
    """`step()` = `update(sample())`, replayed from a CUDA graph per graph key."""

    def __init__(
        self,
        algo: Algorithm,
        sample: Callable[[], TrainBatch],
        update: UpdateFn,
        generators: Sequence[torch.Generator] = (),
    ) -> None:
        if not torch.cuda.is_available():
            raise RuntimeError("CUDA graphs need a CUDA device; this machine has none")
        self.algo, self.sample, self.update = algo, sample, update
        self.generators = list(generators)
        for optimizer in optimizers_of(algo):
            for group in optimizer.param_groups:
                group["capturable"] = True
        self.graphs: dict[Hashable, tuple[torch.cuda.CUDAGraph, Metrics]] = {}
        self.warmed_up: set[Hashable] = set()
        self.side_stream = torch.cuda.Stream()

    def __call__(self, diagnostics: bool = True) -> Metrics:
        """One update, replayed from its graph once captured. `diagnostics` is the behaviour
        loop's wish to skip the update's gradient norms on the steps it does not log: a replay
        runs whatever was captured, so they are always taken here (and cost the GPU little)."""
        key = graph_key(self.algo)
        if key not in self.graphs:
            if key not in self.warmed_up:
                self.warmed_up.add(key)
                return self._on_side_stream()
            self.graphs[key] = self._capture(key)
        graph, outputs = self.graphs[key]
        graph.replay()
        if hasattr(self.algo, "step"):  # what the update's Python would have done
            self.algo.step += 1
        return outputs

    @property
    def captured(self) -> int:
        return len(self.graphs)

    def _on_side_stream(self) -> Metrics:
        self.side_stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side_stream):
            metrics = self.update(self.sample())
        torch.cuda.current_stream().wait_stream(self.side_stream)
        return metrics

    def _capture(self, key: Hashable) -> tuple[torch.cuda.CUDAGraph, Metrics]:
        python_state = dict(vars(self.algo))
        graph = torch.cuda.CUDAGraph()
        inside: Exception | None = None  # ending a broken capture raises a vaguer error
        try:
            for generator in self.generators:
                graph.register_generator_state(generator)
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                try:
                    outputs = self.update(self.sample())
                except Exception as error:
                    inside = error
                    raise
        except Exception as error:
            cause = inside or error
            raise GraphCaptureError(
                f"capturing the {type(self.algo).__name__} update (graph key {key!r}) as a CUDA "
                f"graph failed: {type(cause).__name__}: {cause}. The update must keep to the "
                "rules of offline_rl.algos.base.Algorithm; set train.cuda_graph: false to train "
                "eagerly."
            ) from cause
        finally:
            _restore(self.algo, python_state)
        return graph, outputs


def graph_key(algo: Algorithm) -> Hashable:
    key_of: Callable[[], Hashable] | None = getattr(algo, "graph_key", None)
    return key_of() if key_of is not None else None


def optimizers_of(algo: Algorithm) -> list[torch.optim.Optimizer]:
    return [value for value in vars(algo).values() if isinstance(value, torch.optim.Optimizer)]


def _restore(algo: Any, state: dict[str, Any]) -> None:
    """Put the algorithm's attributes back as they were: capture ran its Python, not its maths."""
    attributes = vars(algo)
    for name in set(attributes) - set(state):
        del attributes[name]
    attributes.update(state)
