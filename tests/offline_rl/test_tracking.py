"""wandb offline runs read back from their files: config, metrics over steps, summary, video, and a
resumed training that continues the same run; the profiler's trace and phase summary."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from offline_rl.buffer import ReplayBuffer
from offline_rl.config import LoopConfig, WandbConfig
from offline_rl.evaluation import record_video
from offline_rl.profiling import Profiler
from offline_rl.tracking import RunLogger, SeedsLogger
from offline_rl.trainer import train
from tests.offline_rl.algos.test_contract import build
from tests.wandb_files import LocalRun, WandbFileError, local_runs
from transitions.loader import load_transitions


class Interrupt(Exception):
    pass


SEEDS = (0, 1)


def offline_training(
    transitions: Path,
    workdir: Path,
    stop_at_eval: int | None = None,
    profiler: Profiler | None = None,
) -> SeedsLogger:
    """Two training seeds, each logged to its own offline wandb run in group `exp`."""
    algo = build("td3_bc", seeds=SEEDS)
    buffer = ReplayBuffer.from_transitions(load_transitions(transitions), seeds=SEEDS)
    loop = LoopConfig(
        steps=40, batch_size=32, log_interval=10, eval_interval=20, checkpoint_interval=20
    )

    def factory(run_ids: list[str | None] | None) -> SeedsLogger:
        runs = [
            RunLogger(
                WandbConfig(project="test", tags=("hopper",)),
                mode="offline",
                job_type="train",
                name=f"exp-train-seed{seed}",
                group="exp",
                run_config={"lr": 1e-3, "transitions_md5": "abc", "train_seed": seed},
                run_id=run_id,
                wandb_dir=workdir,
                curves={},
                extra_tags=["algo:td3_bc"],
            )
            for seed, run_id in zip(SEEDS, run_ids or [None, None], strict=True)
        ]
        return SeedsLogger(
            SEEDS, runs, {"train": workdir / "losses.csv", "eval": workdir / "eval.csv"}
        )

    def evaluate(step: int) -> list[dict[str, float]]:
        if stop_at_eval is not None and step >= stop_at_eval:
            raise Interrupt  # killed after the step-20 checkpoint, before the last one
        return [{"eval/normalized_score_mean": float(step + seed)} for seed in SEEDS]

    logger, last = train(
        algo,
        "td3_bc",
        buffer,
        loop,
        workdir / "ckpt.pt",
        "f",
        factory,
        evaluate,
        False,
        profiler,
    )
    logger.summary([{"algo": "td3_bc", **seed_last} for seed_last in last])
    return logger


@pytest.fixture
def offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")


def read_back(workdir: Path, count: int) -> list[LocalRun]:
    """The runs under workdir/wandb, once each log ends with its exit record: wandb's service
    process may still be writing a log when finish() returns."""
    for _ in range(60):
        try:
            runs = local_runs(workdir / "wandb")
            if len(runs) == count and all(r.exit_code is not None for r in runs):
                return runs
        except WandbFileError:
            pass
        time.sleep(0.5)
    return local_runs(workdir / "wandb")


@pytest.mark.usefixtures("offline_env")
def test_offline_run_holds_config_metrics_summary_and_video(
    random_transitions: Path, tmp_path: Path
) -> None:
    logger = offline_training(random_transitions, tmp_path)
    video = record_video("Hopper-v5", lambda obs: np.zeros((1, 3)), tmp_path / "v.mp4", seed=0)
    assert video is not None, "rendering failed: set MUJOCO_GL=egl"
    logger.runs[0].log_video("evaluate/video", video, step=40)
    logger.finish()

    runs = sorted(read_back(tmp_path, 2), key=lambda r: r.config["train_seed"])
    for seed, run in zip(SEEDS, runs, strict=True):  # one wandb run per seed, in one group
        assert (run.job_type, run.group, run.name) == ("train", "exp", f"exp-train-seed{seed}")
        assert run.tags == ["hopper", "algo:td3_bc"]
        assert run.config["lr"] == 1e-3 and run.config["transitions_md5"] == "abc"
        for key in ("critic_loss", "actor_loss", "q_mean", "q_std", "grad_norm/critic"):
            assert [s for s, _ in run.series(key)] == [10, 20, 30, 40], key
        assert [s for s, _ in run.series("perf/grad_steps_per_s")] == [10, 20, 30, 40]
        assert all(v > 0 for _, v in run.series("grad_norm/actor"))
        assert run.series("eval/normalized_score_mean") == [(20, 20.0 + seed), (40, 40.0 + seed)]
        assert run.summary["algo"] == "td3_bc"
        assert run.summary["eval/normalized_score_mean"] == 40.0 + seed
    assert runs[0].series("critic_loss") != runs[1].series("critic_loss")  # each its own seed's
    assert [f for f in runs[0].files if f.endswith(".mp4")]  # the video went to seed 0's run
    assert not any(f.endswith(".mp4") for f in runs[1].files)


@pytest.mark.usefixtures("offline_env")
def test_resumed_training_continues_the_same_wandb_run(
    random_transitions: Path, tmp_path: Path
) -> None:
    import wandb

    with pytest.raises(Interrupt):
        offline_training(random_transitions, tmp_path, stop_at_eval=40)
    wandb.teardown(exit_code=1)  # what wandb's atexit hook does when the process dies
    offline_training(random_transitions, tmp_path).finish()

    logs = read_back(tmp_path, 4)  # each seed's run, written by both processes
    for seed in SEEDS:
        first, second = sorted(
            (r for r in logs if r.config["train_seed"] == seed), key=lambda r: len(r.history)
        )[::-1]
        assert first.run_id == second.run_id  # one wandb run per seed: `wandb sync` appends
        assert [s for s, _ in first.series("critic_loss")] == [10, 20, 30, 40]
        # The resumed half logs from the checkpoint on (step 20), the step-30/40 rows again.
        assert [s for s, _ in second.series("critic_loss")] == [30, 40]
    rows = (tmp_path / "losses.csv").read_text().splitlines()[1:]
    assert [r.split(",")[:2] for r in rows] == [
        [s, k] for s in ("10", "20", "30", "40") for k in "01"
    ]


@pytest.mark.slow
def test_profiler_writes_a_chrome_trace_and_phase_split(
    random_transitions: Path, tmp_path: Path
) -> None:
    import torch

    trace = tmp_path / "trace.json"
    profiler = Profiler(torch.device("cpu"), trace, trace_steps=5)
    offline_training(random_transitions, tmp_path, profiler=profiler).finish()
    events = json.loads(trace.read_text())["traceEvents"]
    names = {e.get("name") for e in events}
    assert {"sample", "update"} <= names
    summary = profiler.summary()
    assert summary["update_calls"] == 40 and summary["evaluate_calls"] == 2
    assert summary["traced"] and summary["trace/optimizer_step_s"] > 0
    assert summary["trace/backward_s"] > 0
    fractions = sum(summary[f"{p}_fraction"] for p in ("sample", "update", "evaluate"))
    assert fractions == pytest.approx(1.0)


def test_write_curves_leaves_every_curve_file_even_an_empty_one(tmp_path: Path) -> None:
    curves = {"train": tmp_path / "episodes.csv", "eval": tmp_path / "eval" / "hopper.csv"}
    logger = RunLogger.files_only(curves)
    logger.log("eval", 5, {"eval/return_mean": 1.5})
    logger.write_curves()
    assert curves["train"].read_text() == "step\n"  # no episode ended: a header, not a missing out
    assert curves["eval"].read_text().splitlines() == ["step,eval/return_mean", "5,1.5"]
