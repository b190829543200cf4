"""Stage `preprocess@<name>`: Minari datasets -> data/transitions/<name>.h5 with statistics.

DVC runs one stage per entry of `preprocess.datasets` (a `matrix` in dvc.yaml), each writing its own
file, so adding a dataset runs only its stage. An entry is a dataset kind ("medium") or kinds joined
by "+" ("medium+expert"), concatenated into one file in that order. Run by hand without an argument
to build every entry in turn.
"""

from __future__ import annotations

import sys

from core.atomic import write_json
from core.config import ConfigError, choice_error
from datagen.collection.config import CollectConfig
from datagen.preprocessing.config import PreprocessConfig
from datagen.preprocessing.preprocess import preprocess
from pipelines.checks import known_env, offline_namespace, reads_generated
from pipelines.params import PARAMS_FILE, global_params, load_params, section
from pipelines.paths import DATASETS_ROOT, IMPORTED_ROOT, preprocess_metrics_path, transitions_path
from pipelines.stage import run_stage


def main() -> None:
    params = load_params()
    g = global_params(params)
    config = section(params, PreprocessConfig)
    names = sys.argv[1:] or list(config.datasets)
    for name in names:
        if name not in config.datasets:
            raise ConfigError(
                f"{PARAMS_FILE}: preprocess.datasets: {choice_error('entry', name, config.datasets)}"
            )
    known_env(g.env)
    # A kind is read from what collect generated for `env` (data/datasets/<namespace>/<kind>-v0),
    # so `env` must then be one of collect.envs.
    envs = section(params, CollectConfig).envs
    namespace = offline_namespace(g.env, envs) if reads_generated(names) else ""
    for name in names:
        # A part with a "/" is an imported dataset id (data/imported/<id>).
        sources = [
            (part, IMPORTED_ROOT / part)
            if "/" in part
            else (f"{namespace}/{part}-v0", DATASETS_ROOT / namespace / f"{part}-v0")
            for part in name.split("+")
        ]
        summary = preprocess(sources, transitions_path(name), config, seed=g.seed, env_id=g.env)
        write_json(preprocess_metrics_path(name), summary)


if __name__ == "__main__":
    run_stage(main)
