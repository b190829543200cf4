"""Stage `preprocess`: Minari datasets -> one flat transitions file with statistics."""

from __future__ import annotations

from pathlib import Path

from datagen.preprocess import PreprocessConfig, preprocess
from offline_rl.atomic import write_json
from pipelines.common import dataset_namespace, global_params, load_params, run_stage, section

DATASETS_ROOT = Path("data/datasets")
IMPORTED_ROOT = Path("data/imported")  # the download stage's out
OUTPUT = Path("data/transitions/train.h5")


def main() -> None:
    params = load_params()
    g = global_params(params)
    config = section(params, "preprocess", PreprocessConfig)
    namespace = dataset_namespace(g.env)
    # A name with a "/" is an imported dataset id (data/imported/<id>); a bare name is a kind
    # the collect stage generated (data/datasets/<namespace>/<kind>-v0).
    sources = [
        (name, IMPORTED_ROOT / name)
        if "/" in name
        else (f"{namespace}/{name}-v0", DATASETS_ROOT / namespace / f"{name}-v0")
        for name in config.datasets
    ]
    summary = preprocess(sources, OUTPUT, config)
    write_json(Path("metrics/preprocess.json"), summary)


if __name__ == "__main__":
    run_stage(main)
