"""Check params.yaml for every stage at once: `python -m pipelines.validate` before a long `dvc repro`.

Each stage validates its own sections when it starts; this runs all of those checks together, so a
typo in the evaluate section fails now rather than after hours of behaviour training.
"""

from __future__ import annotations

from typing import Any

from datagen.behavior.config import BehaviorConfig
from datagen.collection.config import CollectConfig
from datagen.preprocessing.config import PreprocessConfig
from offline_rl.config import WandbConfig
from pipelines.common import (
    global_params,
    known_env,
    load_params,
    offline_namespace,
    run_stage,
    section,
)
from pipelines.evaluate import EvaluateConfig
from pipelines.preprocess import reads_generated
from pipelines.train import train_configs


def validate_params(params: dict[str, Any]) -> None:
    """Raise ConfigError for the first section that fails; return quietly when all are valid."""
    g = global_params(params)
    known_env(g.env)
    section(params, "behavior", BehaviorConfig)
    collect = section(params, "collect", CollectConfig)
    for namespace, env_id in collect.envs.items():
        known_env(env_id, f"collect.envs.{namespace}")
    preprocess = section(params, "preprocess", PreprocessConfig)
    if reads_generated(preprocess.datasets):
        offline_namespace(g.env, collect.envs)  # preprocess reads what collect made for `env`
    train_configs(params)
    section(params, "evaluate", EvaluateConfig)
    section(params, "wandb", WandbConfig)


def main() -> None:
    validate_params(load_params())
    print("params.yaml: valid for every stage")


if __name__ == "__main__":
    run_stage(main)
