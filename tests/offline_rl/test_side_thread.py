"""A side thread runs its branch elsewhere, under the modes of the thread that started it, and
hands back its result or its error; off the CPU or disabled it runs the branch in place."""

from __future__ import annotations

import threading

import pytest
import torch

from offline_rl.side_thread import SideThread, one_intra_op_thread
from offline_rl.speed import denormals_are_flushed, denormals_flushed

CPU = torch.device("cpu")


def modes() -> tuple[int | None, bool, torch.dtype, bool, bool]:
    """What a branch sees: its thread, autocast (on, dtype), grad mode, denormal flushing."""
    return (
        threading.get_ident(),
        torch.is_autocast_enabled("cpu"),
        torch.get_autocast_dtype("cpu"),
        torch.is_grad_enabled(),
        denormals_are_flushed(),
    )


def test_a_branch_runs_on_another_thread_under_the_callers_modes() -> None:
    side = SideThread(CPU)
    plain = side.run(modes).result()
    assert plain[0] != threading.get_ident()
    assert plain[1:] == modes()[1:]
    with (
        torch.autocast("cpu", dtype=torch.bfloat16),
        torch.no_grad(),
        denormals_flushed(),
    ):
        inside = modes()
        branch = side.run(modes).result()
    assert branch[1:] == inside[1:] == (True, torch.bfloat16, False, True)
    assert side.run(modes).result()[1:] == plain[1:]  # and the next branch sees the new modes
    assert not denormals_are_flushed()


def test_a_branch_computes_what_the_caller_would() -> None:
    side = SideThread(CPU)
    x = torch.randn(64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        here = x @ x
        there = side.run(torch.matmul, x, x).result()
    assert there.dtype == torch.bfloat16 and torch.equal(here, there)


@pytest.mark.parametrize("enabled", [True, False])
def test_a_branchs_error_comes_back_from_its_result(enabled: bool) -> None:
    def fails() -> None:
        raise ValueError("inside the branch")

    future = SideThread(CPU, enabled).run(fails)  # in place too, it raises from .result() only
    with pytest.raises(ValueError, match="inside the branch"):
        future.result()


@pytest.mark.parametrize("side", [SideThread(CPU, enabled=False), SideThread(torch.device("cuda"))])
def test_disabled_or_off_the_cpu_the_branch_runs_in_place(side: SideThread) -> None:
    # a CUDA device is never touched here: the branch just runs on the calling thread
    assert not side.active
    assert side.run(modes).result() == modes()


def test_one_intra_op_thread_inside_and_the_count_restored_after() -> None:
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_intra_op_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with one_intra_op_thread(False):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
