"""Stage `evaluate`: run the trained agent for N episodes; normalised score, metrics and video."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import Field

from offline_rl.agent import load_agent
from offline_rl.config import Device, StrictModel
from offline_rl.evaluation import evaluate_policy, record_video
from offline_rl.trainer import resolve_device
from pipelines.common import global_params, load_params, make_logger_factory, run_stage, section

AGENT = Path("models/train/agent.pt")
VIDEO = Path("videos/evaluate.mp4")
log = logging.getLogger("pipelines.evaluate")


class EvaluateConfig(StrictModel):
    episodes: int = Field(default=10, ge=1)
    video: bool = True
    device: Device = "auto"


def main() -> None:
    params = load_params()
    g = global_params(params)
    config = section(params, "evaluate", EvaluateConfig)
    agent = load_agent(AGENT, resolve_device(config.device))
    meta = agent.meta
    policy = agent.policy()
    result = evaluate_policy(
        meta.env_id,
        policy,
        config.episodes,
        seed=g.seed + 2_000_000,
        ref_min_score=meta.ref_min_score,
        ref_max_score=meta.ref_max_score,
    )
    metrics: dict[str, float | str] = dict(result.to_metrics("evaluate"))
    metrics |= {
        "ref_score_source": meta.ref_score_source,
        "algo": agent.algo_name,
        "env": meta.env_id,
        "dataset": ",".join(meta.dataset_ids),
    }
    VIDEO.parent.mkdir(parents=True, exist_ok=True)  # the DVC out exists even without a video
    logger = make_logger_factory(params, "evaluate", {}, {"stage": "evaluate"})(None)
    try:
        if config.video:
            VIDEO.unlink(missing_ok=True)
            if record_video(meta.env_id, policy, VIDEO, seed=g.seed + 2_000_000) is not None:
                logger.log_video("evaluate/video", VIDEO, step=0)
        logger.summary(metrics, Path("metrics/evaluate.json"))
    finally:
        logger.finish()
    log.info(
        "%s on %s: return %.1f, normalised score %.1f (%s reference)",
        agent.algo_name,
        meta.env_id,
        result.mean_return,
        metrics.get("evaluate/normalized_score_mean", float("nan")),
        meta.ref_score_source,
    )


if __name__ == "__main__":
    run_stage(main)
