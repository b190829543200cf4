"""Stage `train`: train the offline agent named by `train.algo` on the training split of the
transitions file named by `train.dataset` (data/transitions/<train.dataset>.h5), one agent per
training seed of `train.seeds`, all in one process (their networks stacked: offline_rl/seeds.py).

Writes models/train/agents/seed_<k>.pt per seed, curves with a row per step and seed, and
metrics/train.json with each seed's numbers and their mean and std over seeds. Resumes from
models/train/checkpoint.pt (a persisted DVC out) when it belongs to the same run.
"""

from __future__ import annotations

from typing import Any

from core.atomic import write_json
from core.devices import resolve_device
from core.resume import fingerprint, switches_off
from offline_rl.agent import save_agents
from offline_rl.algos.registry import check_action_space, make_algorithm
from offline_rl.evaluation import AgentPolicy, evaluate_policy
from offline_rl.profiling import Profiler
from offline_rl.storage import choose_storage, open_buffer
from offline_rl.tracking import seeds_summary
from offline_rl.trainer import PerSeed, train
from pipelines.checks import check_training_data
from pipelines.loggers import make_seeds_logger_factory
from pipelines.params import PARAMS_FILE, TrainConfig, load_params, train_configs
from pipelines.paths import (
    AGENTS,
    PROFILE_METRICS,
    TRACE,
    TRAIN_CHECKPOINT,
    TRAIN_METRICS,
    TRAIN_PLOTS,
    dvc_md5,
    transitions_path,
)
from pipelines.stage import progress_enabled, run_stage
from transitions.loader import load_transitions
from transitions.metadata import read_meta

EVAL_SEED_OFFSET = 1_000_000  # evaluation episodes reset from data seed + this


def main() -> None:
    params = load_params()
    g, config, algo_config = train_configs(params)
    check_training_data(g.env, config.dataset, config.batch_size, transitions_path(config.dataset))
    device = resolve_device(config.device)
    path = transitions_path(config.dataset)
    meta = read_meta(path)
    check_action_space(config.algo, meta, path, key=f"{PARAMS_FILE}: train.algo")
    seeds = config.seeds
    # Held-out rows are loaded in memory in either storage (validation_fraction of the file).
    validation = (
        load_transitions(path, device, split="validation") if meta.num_validation_episodes else None
    )
    algo = make_algorithm(config.algo, meta.observations, meta.act_dim, algo_config, device, seeds)
    # A sequence model (one with a `context`) samples windows of that many steps. A disk
    # buffer's thread stops, and its mapping closes, when the process exits.
    storage = choose_storage(config.storage, meta, device)
    buffer = open_buffer(path, storage, device, seeds, getattr(algo, "context", None))
    run_config = {
        "algo_config": algo_config.model_dump(),
        "train_config": config.model_dump(),
        "data": meta.to_dict(),
        "dataset_ids": list(meta.dataset_ids),
        "transitions_md5": dvc_md5(path),
        "stage": "train",
    }
    run_id = run_fingerprint(run_config, config, g.seed)
    factory = make_seeds_logger_factory(
        params,
        "train",
        {"train": TRAIN_PLOTS / "losses.csv", "eval": TRAIN_PLOTS / "eval.csv"},
        run_config,
        seeds,
    )
    policy = AgentPolicy.of(algo, meta, device, len(seeds))  # a sequence model: checks its target

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
        TRAIN_CHECKPOINT,
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
        write_json(TRAIN_METRICS, seeds_summary(seeds, per_seed))
        write_json(PROFILE_METRICS, profiler.summary())
    finally:
        logger.finish()


def run_fingerprint(run_config: dict[str, Any], config: TrainConfig, seed: int) -> str:
    """What a checkpoint must match to be resumed: the run's config but train.storage, since both
    storages give the same batches (a run may resume in the other), and flush_denormals when off
    (so that a run saved before the switch existed resumes)."""
    left_out = {"storage"} | switches_off(config, ("flush_denormals",))
    identity = {**run_config, "train_config": config.model_dump(exclude=left_out)}
    return fingerprint({**identity, "seed": seed})


def best_score(history: dict[str, list[dict[str, float]]], seed: int) -> dict[str, float]:
    key = "eval/normalized_score_mean"
    scores = [r[key] for r in history.get("eval", []) if r.get("seed") == seed and key in r]
    return {"eval/best_normalized_score": max(scores)} if scores else {}


if __name__ == "__main__":
    run_stage(main)
