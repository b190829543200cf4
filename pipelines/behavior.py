"""Stage `behavior@<namespace>`: train the behaviour policy of one environment of `collect.envs`
online (SAC for Box actions, Double DQN for Discrete ones) and save its checkpoints.

`python -m pipelines.behavior --env hopper` trains one (what each dvc foreach stage runs); without
arguments it trains every environment of `collect.envs` in turn. Each environment has its own
outputs: models/behavior/<ns>/, plots/behavior/{episodes,losses,eval}/<ns>.csv and
metrics/behavior/<ns>.json.

A killed run resumes from models/behavior_resume/<ns>.pt (a persisted DVC out) when it belongs to
the same configuration; that file says `finished: true` once the run is complete.
"""

from __future__ import annotations

import argparse

from datagen.behavior.config import BehaviorConfig
from datagen.behavior.train import train_behavior
from datagen.collection.config import CollectConfig
from pipelines.checks import select_envs
from pipelines.loggers import make_logger_factory
from pipelines.params import global_params, load_params, section
from pipelines.paths import (
    behavior_curves,
    behavior_dir,
    behavior_metrics_path,
    behavior_resume_path,
)
from pipelines.stage import progress_enabled, run_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", help="a namespace of collect.envs, e.g. hopper (default: all)")
    args = parser.parse_args()
    params = load_params()
    g = global_params(params)
    config = section(params, BehaviorConfig)
    envs = select_envs(section(params, CollectConfig).envs, args.env)
    for namespace, env_id in envs.items():
        factory = make_logger_factory(
            params,
            "behavior",
            behavior_curves(namespace),
            {"stage": f"behavior@{namespace}", "env_id": env_id},
            stage_name=f"behavior@{namespace}",
            env_id=env_id,
        )
        result, logger = train_behavior(
            env_id,
            config,
            g.seed,
            behavior_dir(namespace),
            factory,
            progress_enabled(),
            behavior_resume_path(namespace),
        )
        try:
            logger.write_curves()  # each is a DVC out: present even if nothing was logged to it
            logger.summary(
                {f"behavior/step_{s}_return": r for s, r in result.checkpoints.items()}
                | {"behavior/steps": result.steps},
                behavior_metrics_path(namespace),
            )
        finally:
            logger.finish()


if __name__ == "__main__":
    run_stage(main)
