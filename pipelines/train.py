"""Stage `train`: train the offline agent named by `train.algo` on the training split of the
transitions file named by `train.dataset` (data/transitions/<train.dataset>.h5), one agent per
training seed of `train.seeds`, all in one process (their networks stacked: offline_rl/seeds.py).

Writes models/train/agents/seed_<k>.pt per seed, curves with a row per step and seed, and
metrics/train.json with each seed's numbers and their mean and std over seeds. Resumes from
models/train/checkpoint.pt (a persisted DVC out) when it belongs to the same run.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from pydantic import field_validator

from core.atomic import write_json
from core.config import ConfigError, choice_error, parse_config
from core.devices import Device, resolve_device
from core.resume import fingerprint
from datagen.preprocessing.config import PreprocessConfig
from offline_rl.agent import save_agents
from offline_rl.algos.config import AlgoConfig
from offline_rl.algos.registry import ALGORITHMS, make_algorithm
from offline_rl.buffer import ReplayBuffer
from offline_rl.config import LoopConfig
from offline_rl.evaluation import AgentPolicy, evaluate_policy
from offline_rl.profiling import Profiler
from offline_rl.trainer import PerSeed, train
from pipelines.common import (
    PARAMS_FILE,
    Globals,
    check_training_data,
    dvc_md5,
    global_params,
    load_params,
    make_seeds_logger_factory,
    progress_enabled,
    run_stage,
    section,
)
from pipelines.preprocess import transitions_path
from transitions.loader import load_transitions

OUT_DIR = Path("models/train")
AGENTS = OUT_DIR / "agents"
EVAL_SEED_OFFSET = 1_000_000  # evaluation episodes reset from data seed + this
PLOTS = Path("plots/train")
PROFILE_METRICS = Path("metrics/profile.json")
TRACE = Path("profiles/train_trace.json")


class TrainConfig(LoopConfig):
    algo: str = "td3_bc"
    dataset: str = "medium"  # an entry of preprocess.datasets: trains on its training split
    device: Device = "auto"
    # Training seeds, trained side by side in one process; apart from the top-level `seed`,
    # which generates the data, so a seed grid reruns only train and evaluate.
    seeds: tuple[int, ...] = (0,)

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("at least one training seed")
        if len(set(value)) != len(value):
            raise ValueError(f"training seeds must differ, got {list(value)}")
        if min(value) < 0:
            raise ValueError(f"training seeds must not be negative, got {list(value)}")
        return value

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
    path = transitions_path(config.dataset)
    data = load_transitions(path, device, split="train")
    meta = data.meta
    validation = (
        load_transitions(path, device, split="validation") if meta.num_validation_episodes else None
    )
    seeds = config.seeds
    algo = make_algorithm(config.algo, meta.obs_dim, meta.act_dim, algo_config, device, seeds)
    buffer = ReplayBuffer.from_transitions(data, seeds=seeds)
    run_config = {
        "algo_config": algo_config.model_dump(),
        "train_config": config.model_dump(),
        "data": meta.to_dict(),
        "dataset_ids": list(meta.dataset_ids),
        "transitions_md5": dvc_md5(path),
        "stage": "train",
    }
    run_id = fingerprint({**run_config, "seed": g.seed})
    factory = make_seeds_logger_factory(
        params,
        "train",
        {"train": PLOTS / "losses.csv", "eval": PLOTS / "eval.csv"},
        run_config,
        seeds,
    )
    policy = AgentPolicy(lambda obs: algo.act(obs, deterministic=True), meta, device, len(seeds))

    def evaluate(step: int) -> PerSeed:
        results = evaluate_policy(
            meta.env_id,
            policy,
            config.eval_episodes,
            seed=g.seed + EVAL_SEED_OFFSET,
            ref_min_score=meta.ref_min_score,
            ref_max_score=meta.ref_max_score,
            seeds=len(seeds),
        )
        return [result.to_metrics() for result in results]

    TRACE.parent.mkdir(parents=True, exist_ok=True)  # the DVC out exists even without a trace
    TRACE.unlink(missing_ok=True)
    profiler = Profiler(device, TRACE if config.profile else None)
    logger, last_eval = train(
        algo,
        config.algo,
        buffer,
        config,
        OUT_DIR / "checkpoint.pt",
        run_id,
        factory,
        evaluate,
        progress_enabled(),
        profiler,
        validation,
    )
    try:
        save_agents(AGENTS, config.algo, algo, meta, seeds, {"data_seed": g.seed})
        per_seed = [
            {
                "algo": config.algo,
                "steps": config.steps,
                **final,
                **best_score(logger.history, seed),
            }
            for seed, final in zip(seeds, last_eval, strict=True)
        ]
        logger.summary(per_seed)
        write_json(Path("metrics/train.json"), seeds_summary(seeds, per_seed))
        write_json(PROFILE_METRICS, profiler.summary())
    finally:
        logger.finish()


def best_score(history: dict[str, list[dict[str, float]]], seed: int) -> dict[str, float]:
    key = "eval/normalized_score_mean"
    scores = [r[key] for r in history.get("eval", []) if r.get("seed") == seed and key in r]
    return {"eval/best_normalized_score": max(scores)} if scores else {}


def seeds_summary(seeds: tuple[int, ...], per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Every number's mean over seeds (under its own name) and its std over seeds
    (`<name>/seed_std`, population std as CORL reports), then each seed's own under `seeds`."""
    summary: dict[str, Any] = {}
    for key, value in per_seed[0].items():
        if isinstance(value, str):
            summary[key] = value
            continue
        values = [float(p[key]) for p in per_seed if key in p]
        summary[key] = statistics.fmean(values)
        if len(values) > 1:
            summary[f"{key}/seed_std"] = statistics.pstdev(values)
    summary["num_seeds"] = len(seeds)
    summary["seeds"] = {str(seed): values for seed, values in zip(seeds, per_seed, strict=True)}
    return summary


if __name__ == "__main__":
    run_stage(main)
