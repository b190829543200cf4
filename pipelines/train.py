"""Stage `train`: train the offline agent named by `train.algo` on the training split of the
transitions file named by `train.dataset` (data/transitions/<train.dataset>.h5).

Resumes from models/train/checkpoint.pt (a persisted DVC out) when it belongs to the same run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import field_validator

from datagen.preprocess import PreprocessConfig
from offline_rl.agent import save_agent
from offline_rl.algos import ALGORITHMS, make_algorithm
from offline_rl.algos.base import AlgoConfig
from offline_rl.atomic import write_json
from offline_rl.buffer import ReplayBuffer
from offline_rl.checkpoint import seed_everything
from offline_rl.config import ConfigError, Device, choice_error, parse_config
from offline_rl.evaluation import AgentPolicy, evaluate_policy
from offline_rl.profiling import Profiler
from offline_rl.trainer import LoopConfig, fingerprint, resolve_device, train
from offline_rl.transitions import load_transitions
from pipelines.common import (
    PARAMS_FILE,
    Globals,
    check_training_data,
    dvc_md5,
    global_params,
    load_params,
    make_logger_factory,
    progress_enabled,
    run_stage,
    section,
)
from pipelines.preprocess import transitions_path

OUT_DIR = Path("models/train")
PLOTS = Path("plots/train")
PROFILE_METRICS = Path("metrics/profile.json")
TRACE = Path("profiles/train_trace.json")


class TrainConfig(LoopConfig):
    algo: str = "td3_bc"
    dataset: str = "medium"  # an entry of preprocess.datasets: trains on its training split
    device: Device = "auto"

    @field_validator("algo")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in ALGORITHMS:
            raise ValueError(choice_error("algorithm", value, ALGORITHMS))
        return value


def train_configs(params: dict[str, Any]) -> tuple[Globals, TrainConfig, AlgoConfig]:
    """Validate everything the stage reads, every algos.* entry included (a typo in an algorithm
    not chosen now would otherwise surface only in a later experiment)."""
    g = global_params(params)
    config = section(params, "train", TrainConfig)
    algos = params.get("algos") or {}
    if not isinstance(algos, dict):
        raise ConfigError(
            f"{PARAMS_FILE}: algos must be a mapping of algorithm names, got {algos!r}"
        )
    for name in algos:
        if name not in ALGORITHMS:
            raise ConfigError(
                f"{PARAMS_FILE}: algos: {choice_error('algorithm', str(name), ALGORITHMS)}"
            )
    configs = {
        name: parse_config(model, algos.get(name), f"algos.{name}", str(PARAMS_FILE))
        for name, (_, model) in ALGORITHMS.items()
    }
    datasets = section(params, "preprocess", PreprocessConfig).datasets
    if config.dataset not in datasets:
        raise ConfigError(
            f"{PARAMS_FILE}: train.dataset: {choice_error('dataset', config.dataset, datasets)} "
            "(the entries of preprocess.datasets)"
        )
    return g, config, configs[config.algo].with_default_lr(g.lr)


def main() -> None:
    params = load_params()
    g, config, algo_config = train_configs(params)
    check_training_data(g.env, config.dataset, config.batch_size, transitions_path(config.dataset))
    device = resolve_device(config.device)
    data = load_transitions(transitions_path(config.dataset), device, split="train")
    meta = data.meta
    seed_everything(g.seed)  # the initial weights too: torch's default seed differs per process
    algo = make_algorithm(config.algo, meta.obs_dim, meta.act_dim, algo_config, device)
    buffer = ReplayBuffer.from_transitions(data, seed=g.seed)
    run_config = {
        "algo_config": algo_config.model_dump(),
        "train_config": config.model_dump(),
        "data": meta.to_dict(),
        "dataset_ids": list(meta.dataset_ids),
        "transitions_md5": dvc_md5(transitions_path(config.dataset)),
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
