"""The training step replayed from CUDA graphs does the same updates as eager steps, with every
branch an algorithm takes, and resumes from checkpoints like them. The GPU tests are skipped on a
machine without CUDA (CI); run them on one: `pytest tests/offline_rl/test_cuda_graph.py`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks.common import random_buffer
from offline_rl.buffer import ReplayBuffer
from offline_rl.cuda_graph import GraphedTrainStep
from offline_rl.side_stream import set_concurrency
from offline_rl.speed import accelerate
from offline_rl.trainer import random_generators
from offline_rl.windows import WindowBuffer
from tests.offline_rl.algos.discrete_data import discrete_buffer, in_memory_meta
from tests.offline_rl.algos.test_contract import NAMES, SMALL, build, discrete, params_of, sequence
from tests.offline_rl.test_trainer import run
from transitions.loader import Transitions

CUDA = torch.device("cuda")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
# Every branch within a few steps: TD3+BC's and ReBRAC's delayed actor, CQL's BC warm-up ending,
# IQL's learning-rate cosine reaching zero; discrete CQL's target copy (every 4: test_contract).
BRANCHES = {"policy_freq": 2, "bc_steps": 3, "actor_lr_cosine_steps": 8}
GRAPH_KEYS = {
    "td3_bc": 2,
    "rebrac": 2,
    "cql": 2,
    "discrete_cql": 2,
}  # graphs captured in 12 steps; others 1


def synthetic_buffer(
    device: torch.device, size: int = 4096, seed: int = 0, seeds: tuple[int, ...] = (0,)
) -> ReplayBuffer:
    """Random transitions made on the host (no environment needed on a GPU machine), sampled
    for training `seeds`."""
    return random_buffer(size, device, seeds, seed, with_next_actions=True)


def synthetic_windows(
    device: torch.device, size: int = 4096, seeds: tuple[int, ...] = (0,)
) -> WindowBuffer:
    """Random rows in episodes of 1 to 60 steps with their undiscounted returns-to-go, made on the
    host, as windows of the contract tests' context for training `seeds`."""
    g = torch.Generator().manual_seed(0)
    obs_dim, act_dim = 11, 3
    lengths = torch.randint(1, 61, (size,), generator=g)
    episode_ids = torch.repeat_interleave(torch.arange(size), lengths)[:size]
    rewards = torch.randn(size, generator=g)
    returns_to_go = torch.empty(size)
    for episode in episode_ids.unique():
        rows = (episode_ids == episode).nonzero()[:, 0]
        returns_to_go[rows] = rewards[rows].flip(0).cumsum(0).flip(0)
    last = torch.ones(size, dtype=torch.bool)
    last[:-1] = episode_ids[1:] != episode_ids[:-1]
    observations = torch.randn(size, obs_dim, generator=g)
    data = Transitions(
        observations=observations.to(device),
        actions=(torch.rand(size, act_dim, generator=g) * 2 - 1).to(device),
        rewards=rewards.to(device),
        next_observations=torch.randn(size, obs_dim, generator=g).to(device),
        dones=last.float().to(device),
        meta=in_memory_meta(obs_dim, act_dim, size, num_episodes=int(episode_ids[-1]) + 1),
        returns_to_go=returns_to_go.to(device),
        episode_ids=episode_ids.to(device),
    )
    return WindowBuffer(data, SMALL["context"], seeds)


def train_steps(
    name: str, steps: int, graphed: bool, concurrent: bool = True, **switches: Any
) -> tuple[Any, dict[str, Any]]:
    algo = build(
        name, seeds=[3, 4], overrides=BRANCHES, device=CUDA
    )  # two seeds: their streams too
    set_concurrency(algo, concurrent)
    buffer: ReplayBuffer | WindowBuffer
    if discrete(name):
        buffer = discrete_buffer((3, 4), CUDA, rows=4096)
    elif sequence(name):
        buffer = synthetic_windows(CUDA, seeds=(3, 4))
    else:
        buffer = synthetic_buffer(CUDA, seeds=(3, 4))
    update = accelerate(algo, device=CUDA, **switches)
    step = (
        GraphedTrainStep(
            algo, lambda: buffer.sample(64), update, [*buffer.generators, *random_generators(algo)]
        )
        if graphed
        else lambda: update(buffer.sample(64))
    )
    metrics: dict[str, torch.Tensor] = {}
    for _ in range(steps):
        metrics.update(step())
    return algo, {"metrics": metrics, "step": step}


def named(key: str) -> Callable[[str], str]:
    return lambda message: f"{key}: {message}"


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", NAMES)
def test_graph_replays_do_what_eager_steps_do(name: str, precision: str) -> None:
    eager, eager_out = train_steps(name, 12, graphed=False, precision=precision)
    graphed, graphed_out = train_steps(name, 12, graphed=True, precision=precision)
    runner = graphed_out["step"]
    assert runner.captured == GRAPH_KEYS.get(name, 1)
    assert getattr(graphed, "step", None) == getattr(eager, "step", None)
    expected, got = params_of(eager), params_of(graphed)
    for key in expected:  # same kernels and random numbers; only cuBLAS may pick other kernels
        torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-5, msg=named(key))
    assert eager_out["metrics"].keys() == graphed_out["metrics"].keys()
    for key, value in eager_out["metrics"].items():
        torch.testing.assert_close(graphed_out["metrics"][key], value, rtol=1e-3, atol=1e-4)


@needs_cuda
@pytest.mark.parametrize("name", ["td3_bc", "iql"])
def test_compiled_graph_replays_do_what_eager_steps_do(name: str) -> None:
    # `train.compile: true` on a GPU replays inductor's kernels from the graphs (cuda_graph is on
    # by default), side-stream branches included.
    eager, _ = train_steps(name, 12, graphed=False)
    compiled, out = train_steps(name, 12, graphed=True, compile=True)
    assert out["step"].update.compiled, "compilation fell back to eager on this machine"
    assert out["step"].captured == GRAPH_KEYS.get(name, 1)
    expected, got = params_of(eager), params_of(compiled)
    for key in expected:  # same maths; fused kernels may round differently in the last bits
        torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-5, msg=named(key))


@needs_cuda
@pytest.mark.parametrize("name", ["td3_bc", "iql", "cql"])
def test_graphed_training_resumes_like_uninterrupted(name: str, tmp_path: Path) -> None:
    from tests.offline_rl.test_trainer import Interrupt

    def source() -> ReplayBuffer:
        return synthetic_buffer(CUDA)

    options: dict[str, Any] = {"device": CUDA, "cuda_graph": True}
    straight = run(name, source, tmp_path / "a", steps=30, **options)
    with pytest.raises(Interrupt):
        run(name, source, tmp_path / "b", steps=30, stop_after_eval=20, **options)
    resumed = run(name, source, tmp_path / "b", steps=30, **options)
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=1e-4, atol=1e-5, msg=key)


def test_graphed_step_refuses_a_machine_without_cuda() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    algo = build("bc")
    buffer = synthetic_buffer(torch.device("cpu"))
    with pytest.raises(RuntimeError, match="CUDA graphs need a CUDA device"):
        GraphedTrainStep(
            algo,
            lambda: buffer.sample(8),
            accelerate(algo),
            [*buffer.generators, *random_generators(algo)],
        )


SYNCING_UPDATE = """
import torch
from offline_rl.cuda_graph import GraphCaptureError, GraphedTrainStep
from offline_rl.speed import accelerate
from tests.offline_rl.algos.test_contract import build
from tests.offline_rl.test_cuda_graph import synthetic_buffer

algo = build("bc", device="cuda")
update = algo.update
algo.update = lambda batch: {"loss": torch.tensor(update(batch)["actor_loss"].item())}
buffer = synthetic_buffer(torch.device("cuda"))
step = GraphedTrainStep(algo, lambda: buffer.sample(8), accelerate(algo, device="cuda"))
step()  # eager warm-up
try:
    step()
except GraphCaptureError as error:
    print(error)
"""


@needs_cuda
def test_an_update_that_synchronises_fails_capture_naming_the_cause() -> None:
    # In a child process: a failed capture leaves CUDA's random generators unusable there.
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", SYNCING_UPDATE], capture_output=True, text=True, check=True
    )
    assert "capturing the BC update" in done.stdout
    assert "train.cuda_graph: false" in done.stdout
