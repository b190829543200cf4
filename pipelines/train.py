"""Stage `train`: train the offline agent named by `train.algo` on the transitions file.

Resumes from models/train/checkpoint.pt (a persisted DVC out) when it belongs to the same run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import field_validator

from offline_rl.agent import save_agent
from offline_rl.algos import ALGORITHMS, make_algorithm
from offline_rl.atomic import write_json
from offline_rl.buffer import ReplayBuffer
from offline_rl.config import choice_error, parse_config
from offline_rl.evaluation import AgentPolicy, evaluate_policy
from offline_rl.profiling import Profiler
from offline_rl.trainer import LoopConfig, fingerprint, resolve_device, train
from offline_rl.transitions import load_transitions
from pipelines.common import (
    PARAMS_FILE,
    dvc_md5,
    global_params,
    load_params,
    make_logger_factory,
    progress_enabled,
    run_stage,
    section,
)

TRANSITIONS = Path("data/transitions/train.h5")
OUT_DIR = Path("models/train")
PLOTS = Path("plots/train")
PROFILE_METRICS = Path("metrics/profile.json")
TRACE = Path("profiles/train_trace.json")


class TrainConfig(LoopConfig):
    algo: str = "td3_bc"
    device: str = "auto"

    @field_validator("algo")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in ALGORITHMS:
            raise ValueError(choice_error("algorithm", value, ALGORITHMS))
        return value


def main() -> None:
    params = load_params()
    g = global_params(params)
    config = section(params, "train", TrainConfig)
    algos: dict[str, Any] = params.get("algos") or {}
    _, config_model = ALGORITHMS[config.algo]
    algo_config = parse_config(
        config_model, algos.get(config.algo), f"algos.{config.algo}", str(PARAMS_FILE)
    ).with_default_lr(g.lr)
    device = resolve_device(config.device)
    data = load_transitions(TRANSITIONS, device)
    meta = data.meta
    algo = make_algorithm(config.algo, meta.obs_dim, meta.act_dim, algo_config, device)
    buffer = ReplayBuffer.from_transitions(data, seed=g.seed)
    run_config = {
        "algo_config": algo_config.model_dump(),
        "train_config": config.model_dump(),
        "data": meta.to_dict(),
        "dataset_ids": list(meta.dataset_ids),
        "transitions_md5": dvc_md5(TRANSITIONS),
        "stage": "train",
    }
    run_id = fingerprint({**run_config, "seed": g.seed})
    factory = make_logger_factory(
        params, "train", {"train": PLOTS / "losses.csv", "eval": PLOTS / "eval.csv"}, run_config
    )
    policy = AgentPolicy(lambda obs: algo.act(obs, deterministic=True), meta, device)

    def evaluate(step: int) -> dict[str, float]:
        result = evaluate_policy(
            meta.env_id,
            policy,
            config.eval_episodes,
            seed=g.seed + 1_000_000,
            ref_min_score=meta.ref_min_score,
            ref_max_score=meta.ref_max_score,
        )
        return result.to_metrics()

    TRACE.parent.mkdir(parents=True, exist_ok=True)  # the DVC out exists even without a trace
    TRACE.unlink(missing_ok=True)
    profiler = Profiler(device, TRACE if config.profile else None)
    logger, last_eval = train(
        algo,
        config.algo,
        buffer,
        config,
        g.seed,
        OUT_DIR / "checkpoint.pt",
        run_id,
        factory,
        evaluate,
        progress_enabled(),
        profiler,
    )
    try:
        save_agent(OUT_DIR / "agent.pt", config.algo, algo, meta, {"seed": g.seed})
        key = "eval/normalized_score_mean"
        scores = [r[key] for r in logger.history["eval"] if key in r]
        best = {"eval/best_normalized_score": max(scores)} if scores else {}
        logger.summary(
            {"algo": config.algo, "steps": config.steps, **last_eval, **best},
            Path("metrics/train.json"),
        )
        write_json(PROFILE_METRICS, profiler.summary())
    finally:
        logger.finish()


if __name__ == "__main__":
    run_stage(main)
