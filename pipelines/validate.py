"""Check params.yaml for every stage at once: `python -m pipelines.validate` before a long `dvc repro`.

Each stage validates its own sections when it starts; this runs all of those checks together, so a
typo in the evaluate section fails now rather than after hours of behaviour training: every section
of the schema (pipelines/params.py), the environments, and the checks across sections.
"""

from __future__ import annotations

from typing import Any

from datagen.collection.config import CollectConfig
from datagen.preprocessing.config import PreprocessConfig
from pipelines.checks import known_env, offline_namespace, reads_generated, select_envs
from pipelines.params import SECTIONS, global_params, load_params, section, train_configs
from pipelines.stage import run_stage


def validate_params(params: dict[str, Any]) -> None:
    """Raise ConfigError for the first problem; return quietly when every section is valid."""
    g = global_params(params)
    known_env(g.env)
    for model in SECTIONS.values():
        section(params, model)
    collect = section(params, CollectConfig)
    select_envs(collect.envs, None)
    if reads_generated(section(params, PreprocessConfig).datasets):
        offline_namespace(g.env, collect.envs)  # preprocess reads what collect made for `env`
    train_configs(params)  # train.dataset is an entry of preprocess.datasets


def main() -> None:
    validate_params(load_params())
    print("params.yaml: valid for every stage")


if __name__ == "__main__":
    run_stage(main)
