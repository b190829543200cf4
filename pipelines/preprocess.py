"""Stage `preprocess`: Minari datasets -> one flat transitions file with statistics."""

from __future__ import annotations

from pathlib import Path

from datagen.preprocess import PreprocessConfig, preprocess
from offline_rl.atomic import write_json
from pipelines.common import (
    dataset_namespace,
    global_params,
    known_env,
    load_params,
    run_stage,
    section,
)

DATASETS_ROOT = Path("data/datasets")
OUTPUT = Path("data/transitions/train.h5")


def main() -> None:
    params = load_params()
    g = global_params(params)
    config = section(params, "preprocess", PreprocessConfig)
    known_env(g.env)
    namespace = dataset_namespace(g.env)
    sources = [
        (f"{namespace}/{kind}-v0", DATASETS_ROOT / namespace / f"{kind}-v0")
        for kind in config.datasets
    ]
    summary = preprocess(sources, OUTPUT, config, env_id=g.env)
    write_json(Path("metrics/preprocess.json"), summary)


if __name__ == "__main__":
    run_stage(main)
