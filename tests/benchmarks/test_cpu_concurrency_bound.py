from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks.cpu_concurrency_bound import measure
from transitions.loader import load_transitions


def test_times_the_three_setups_and_leaves_the_thread_count_alone(random_transitions: Path) -> None:
    threads = torch.get_num_threads()
    args = argparse.Namespace(steps=3, warmup=1, rounds=2, threads=2)
    row = measure("td3_bc", load_transitions(random_transitions), args)
    assert len(row["steps_per_s"]) == 3
    assert all(len(rates) == 2 and min(rates) > 0 for rates in row["rounds"].values())
    two_streams = row["steps_per_s"]["two independent streams, 1 intra-op thread each"]
    assert row["bound"] == two_streams / row["steps_per_s"]["main thread, 2 intra-op threads"]
    assert torch.get_num_threads() == threads
