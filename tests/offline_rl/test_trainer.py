from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from offline_rl.algos import ALGORITHMS
from offline_rl.buffer import ReplayBuffer
from offline_rl.checkpoint import load_checkpoint
from offline_rl.tracking import RunLogger
from offline_rl.trainer import LoopConfig, TrainingDiverged, train
from offline_rl.transitions import load_transitions
from tests.offline_rl.algos.test_contract import build, params_of


class Interrupt(Exception):
    pass


def run(
    name: str,
    source: Path | Callable[[], ReplayBuffer],
    workdir: Path,
    steps: int,
    stop_after_eval: int | None = None,
    device: torch.device | str = "cpu",
    **loop_options: Any,
) -> dict[str, torch.Tensor]:
    """Train `name` on a transitions file (or a buffer made by `source`); returns its weights."""
    algo = build(name, seed=0, device=device)
    if isinstance(source, Path):
        buffer = ReplayBuffer.from_transitions(load_transitions(source), seed=0)
    else:
        buffer = source()
    loop = LoopConfig(
        steps=steps,
        batch_size=32,
        log_interval=5,
        eval_interval=10,
        checkpoint_interval=10,
        **loop_options,
    )

    def factory(run_id: str | None) -> RunLogger:
        return RunLogger.files_only(
            {"train": workdir / "losses.csv", "eval": workdir / "eval.csv"}, run_id=run_id
        )

    def evaluate(step: int) -> dict[str, float]:
        if stop_after_eval is not None and step >= stop_after_eval:
            raise Interrupt  # a kill right after the evaluation, before that checkpoint
        return {"eval/return_mean": float(step)}

    logger, _ = train(
        algo,
        name,
        buffer,
        loop,
        seed=0,
        checkpoint_path=workdir / "ckpt.pt",
        run_fingerprint="f",
        logger_factory=factory,
        evaluate=evaluate,
        progress=False,
    )
    logger.finish()
    return params_of(algo)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_resume_after_interruption_matches_uninterrupted(
    name: str, random_transitions: Path, tmp_path: Path
) -> None:
    straight = run(name, random_transitions, tmp_path / "a", steps=30)
    with pytest.raises(Interrupt):
        run(name, random_transitions, tmp_path / "b", steps=30, stop_after_eval=20)
    assert load_checkpoint(tmp_path / "b" / "ckpt.pt")["step"] == 10
    resumed = run(name, random_transitions, tmp_path / "b", steps=30)
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    rows = (tmp_path / "b" / "losses.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["5", "10", "15", "20", "25", "30"]


def test_diverging_loss_stops_with_step_and_checkpoint(
    random_transitions: Path, tmp_path: Path
) -> None:
    data = load_transitions(random_transitions)
    poisoned = ReplayBuffer.from_transitions(data, seed=0)
    poisoned.rewards.fill_(float("nan"))  # a view of the rows batches are drawn from
    algo = build("td3_bc")
    loop = LoopConfig(
        steps=20, batch_size=32, log_interval=5, eval_interval=100, checkpoint_interval=100
    )

    def factory(run_id: str | None) -> RunLogger:
        return RunLogger.files_only({"train": tmp_path / "l.csv", "eval": tmp_path / "e.csv"})

    with pytest.raises(TrainingDiverged, match=r"critic_loss.*step 5.*last good checkpoint: none"):
        train(
            algo,
            "td3_bc",
            poisoned,
            loop,
            0,
            tmp_path / "ckpt.pt",
            "f",
            factory,
            lambda step: {},
            progress=False,
        )
    assert not (tmp_path / "ckpt.pt").exists()


def test_a_log_at_a_critic_only_step_carries_the_latest_actor_losses(
    random_transitions: Path, tmp_path: Path
) -> None:
    run("td3_bc", random_transitions, tmp_path, steps=5)  # logs at step 5; the actor learns at 4
    header, row = (tmp_path / "losses.csv").read_text().splitlines()[:2]
    values = dict(zip(header.split(","), row.split(","), strict=True))
    assert values["step"] == "5" and float(values["actor_loss"]) == float(values["actor_loss"])


def test_cuda_graph_switch_on_a_cpu_device_trains_eagerly(
    random_transitions: Path, tmp_path: Path
) -> None:
    eager = run("td3_bc", random_transitions, tmp_path / "a", steps=10)
    switched = run("td3_bc", random_transitions, tmp_path / "b", steps=10, cuda_graph=True)
    assert all(torch.equal(eager[k], switched[k]) for k in eager)
