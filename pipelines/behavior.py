"""Stage `behavior`: train the SAC behaviour policy online and save its checkpoints.

A killed run resumes from models/behavior_resume.pt (a persisted DVC out) when it belongs to the
same configuration; that file says `finished: true` once the run is complete.
"""

from __future__ import annotations

from pathlib import Path

from datagen.behavior import BehaviorConfig, train_behavior
from pipelines.common import (
    global_params,
    known_env,
    load_params,
    make_logger_factory,
    progress_enabled,
    run_stage,
    section,
)

OUT_DIR = Path("models/behavior")
# Persisted DVC out (outside OUT_DIR, which DVC deletes before a run): the rerun resumes from it.
RESUME_STATE = Path("models/behavior_resume.pt")
PLOTS = Path("plots/behavior")


def main() -> None:
    params = load_params()
    g = global_params(params)
    config = section(params, "behavior", BehaviorConfig)
    known_env(g.env)
    factory = make_logger_factory(
        params,
        "behavior",
        {
            "train": PLOTS / "episodes.csv",
            "losses": PLOTS / "losses.csv",
            "eval": PLOTS / "eval.csv",
        },
        {"stage": "behavior"},
    )
    result, logger = train_behavior(
        g.env, config, g.seed, OUT_DIR, factory, progress_enabled(), RESUME_STATE
    )
    try:
        logger.summary(
            {f"behavior/step_{s}_return": r for s, r in result.checkpoints.items()},
            Path("metrics/behavior.json"),
        )
    finally:
        logger.finish()


if __name__ == "__main__":
    run_stage(main)
