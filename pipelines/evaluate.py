"""Stage `evaluate`: run every seed's trained agent for N episodes, all seeds in one batched
vector environment; per-seed and over-seed returns and normalised scores, metrics and a video
(of the first seed's agent)."""

from __future__ import annotations

import logging

from core.atomic import write_json
from core.devices import resolve_device
from offline_rl.agent import agent_files, load_agent, load_agents
from offline_rl.evaluation import evaluate_policy, record_video
from offline_rl.tracking import seeds_summary
from pipelines.loggers import make_seeds_logger_factory
from pipelines.params import EvaluateConfig, global_params, load_params, section
from pipelines.paths import AGENTS, EVALUATE_METRICS, VIDEO
from pipelines.stage import run_stage

EVAL_SEED_OFFSET = 2_000_000  # final evaluation episodes reset from data seed + this
log = logging.getLogger("pipelines.evaluate")


def main() -> None:
    params = load_params()
    g = global_params(params)
    config = section(params, EvaluateConfig)
    device = resolve_device(config.device)
    files = agent_files(AGENTS)
    agent = load_agents(files, device)
    meta = agent.meta
    results = evaluate_policy(
        meta.env_id,
        agent.policy(),
        config.episodes,
        seed=g.seed + EVAL_SEED_OFFSET,
        ref_min_score=meta.ref_min_score,
        ref_max_score=meta.ref_max_score,
        seeds=len(agent.seeds),
    )
    labels: dict[str, float | str] = {
        "ref_score_source": meta.ref_score_source,
        "algo": agent.algo_name,
        "env": meta.env_id,
        "dataset": ",".join(meta.dataset_ids),
    }
    per_seed: list[dict[str, float | str]] = [
        {**labels, **result.to_metrics("evaluate")} for result in results
    ]
    VIDEO.parent.mkdir(parents=True, exist_ok=True)  # the DVC out exists even without a video
    logger = make_seeds_logger_factory(params, "evaluate", {}, {"stage": "evaluate"}, agent.seeds)(
        None
    )
    try:
        if config.video:
            VIDEO.unlink(missing_ok=True)
            first = load_agent(files[0], device).policy()
            if record_video(meta.env_id, first, VIDEO, seed=g.seed + EVAL_SEED_OFFSET) is not None:
                logger.runs[0].log_video("evaluate/video", VIDEO, step=0)
        logger.summary(per_seed)
        summary = seeds_summary(agent.seeds, per_seed)
        write_json(EVALUATE_METRICS, summary)
    finally:
        logger.finish()
    score = summary.get("evaluate/normalized_score_mean")
    success = summary.get("evaluate/success_rate")
    log.info(
        "%s on %s, %d seed(s): return %.1f%s%s",
        agent.algo_name,
        meta.env_id,
        len(agent.seeds),
        summary["evaluate/return_mean"],
        ""
        if score is None
        else f", normalised score {score:.1f} ({meta.ref_score_source} reference)",
        "" if success is None else f", success rate {success:.2f}",
    )


if __name__ == "__main__":
    run_stage(main)
