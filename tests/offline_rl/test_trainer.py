from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from core.checkpoint import load_checkpoint
from offline_rl.algos.registry import ALGORITHMS
from offline_rl.buffer import ReplayBuffer
from offline_rl.config import LoopConfig
from offline_rl.speed import denormals_are_flushed
from offline_rl.tracking import SeedsLogger
from offline_rl.trainer import Sampler, TrainingDiverged, train
from tests.offline_rl.algos.discrete_data import discrete_buffer
from tests.offline_rl.algos.test_contract import build, data_for, discrete, params_of
from transitions.loader import load_transitions


class Interrupt(Exception):
    pass


def run(
    name: str,
    source: Path | Callable[[], Sampler],
    workdir: Path,
    steps: int,
    stop_after_eval: int | None = None,
    device: torch.device | str = "cpu",
    seeds: tuple[int, ...] = (0,),
    validation: Path | None = None,
    on_evaluate: Callable[[], None] | None = None,
    **loop_options: Any,
) -> dict[str, torch.Tensor]:
    """Train `name` on a transitions file (or a buffer made by `source`); returns its weights."""
    algo = build(name, device=device, seeds=seeds)
    buffer = data_for(name, source, seeds=seeds) if isinstance(source, Path) else source()
    loop = LoopConfig(
        steps=steps,
        batch_size=32,
        log_interval=5,
        eval_interval=10,
        checkpoint_interval=10,
        **loop_options,
    )

    def factory(run_ids: list[str | None] | None) -> SeedsLogger:
        return SeedsLogger.files_only(
            seeds, {"train": workdir / "losses.csv", "eval": workdir / "eval.csv"}
        )

    def evaluate(step: int) -> list[dict[str, float]]:
        if stop_after_eval is not None and step >= stop_after_eval:
            raise Interrupt  # a kill right after the evaluation, before that checkpoint
        if on_evaluate is not None:
            on_evaluate()
        return [{"eval/return_mean": float(step + seed)} for seed in seeds]

    logger, _ = train(
        algo,
        name,
        buffer,
        loop,
        checkpoint_path=workdir / "ckpt.pt",
        run_fingerprint="f",
        logger_factory=factory,
        evaluate=evaluate,
        progress=False,
        validation=None if validation is None else load_transitions(validation),
    )
    logger.finish()
    return params_of(algo)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_resume_after_interruption_matches_uninterrupted(
    name: str, random_transitions: Path, tmp_path: Path
) -> None:
    data: Path | Callable[[], ReplayBuffer] = (
        discrete_buffer if discrete(name) else random_transitions
    )
    straight = run(name, data, tmp_path / "a", steps=30)
    with pytest.raises(Interrupt):
        run(name, data, tmp_path / "b", steps=30, stop_after_eval=20)
    assert load_checkpoint(tmp_path / "b" / "ckpt.pt")["step"] == 10
    resumed = run(name, data, tmp_path / "b", steps=30)
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    rows = (tmp_path / "b" / "losses.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["5", "10", "15", "20", "25", "30"]


def test_a_multi_seed_run_resumes_every_seed(random_transitions: Path, tmp_path: Path) -> None:
    seeds = (2, 0, 5)
    straight = run("td3_bc", random_transitions, tmp_path / "a", steps=30, seeds=seeds)
    with pytest.raises(Interrupt):
        run("td3_bc", random_transitions, tmp_path / "b", 30, stop_after_eval=20, seeds=seeds)
    resumed = run("td3_bc", random_transitions, tmp_path / "b", steps=30, seeds=seeds)
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    rows = [r.split(",")[:2] for r in (tmp_path / "b" / "eval.csv").read_text().splitlines()[1:]]
    assert rows == [[step, str(seed)] for step in ("10", "20", "30") for seed in seeds]


def test_evaluations_log_validation_losses_per_seed(
    random_transitions: Path, tmp_path: Path
) -> None:
    run(
        "td3_bc",
        random_transitions,
        tmp_path,
        steps=10,
        seeds=(0, 1),
        validation=random_transitions,
    )
    header, *rows = (tmp_path / "eval.csv").read_text().splitlines()
    columns = header.split(",")
    assert {"val/td_error", "val/action_mse"} <= set(columns)
    values = [dict(zip(columns, row.split(","), strict=True)) for row in rows]
    assert [v["seed"] for v in values] == ["0", "1"]
    assert all(float(v["val/td_error"]) >= 0 for v in values)
    assert values[0]["val/td_error"] != values[1]["val/td_error"]  # each seed's own networks


def test_diverging_loss_stops_with_step_and_checkpoint(
    random_transitions: Path, tmp_path: Path
) -> None:
    data = load_transitions(random_transitions)
    poisoned = ReplayBuffer.from_transitions(data, seeds=[0])
    poisoned.rewards.fill_(float("nan"))  # a view of the rows batches are drawn from
    algo = build("td3_bc")
    loop = LoopConfig(
        steps=20, batch_size=32, log_interval=5, eval_interval=100, checkpoint_interval=100
    )

    def factory(run_ids: list[str | None] | None) -> SeedsLogger:
        return SeedsLogger.files_only(
            (0,), {"train": tmp_path / "l.csv", "eval": tmp_path / "e.csv"}
        )

    with pytest.raises(
        TrainingDiverged, match=r"critic_loss.*step 5 \(seed 0\).*last good checkpoint: none"
    ):
        train(
            algo,
            "td3_bc",
            poisoned,
            loop,
            tmp_path / "ckpt.pt",
            "f",
            factory,
            lambda step: [{}],
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


def test_flushing_denormals_holds_through_training_and_repeats(
    random_transitions: Path, tmp_path: Path
) -> None:
    modes: list[bool] = []
    flushed = [
        run(
            "iql",
            random_transitions,
            tmp_path / name,
            steps=20,
            on_evaluate=lambda: modes.append(denormals_are_flushed()),
            flush_denormals=True,
        )
        for name in ("a", "b")
    ]
    assert modes == [True] * 4  # at every evaluation of both runs
    assert not denormals_are_flushed()  # and off again after them
    assert all(torch.equal(flushed[0][k], flushed[1][k]) for k in flushed[0])


def test_a_run_saved_before_flush_denormals_existed_still_resumes() -> None:
    from pipelines.params import TrainConfig
    from pipelines.train import run_fingerprint

    off = TrainConfig()
    # computed by the code before the switch existed: a checkpoint saved then still matches
    assert run_fingerprint({"algo": "iql"}, off, 0) == "05d2f4e2bd2a9c3a"
    on = TrainConfig(flush_denormals=True)
    assert run_fingerprint({"algo": "iql"}, on, 0) != run_fingerprint({"algo": "iql"}, off, 0)
