"""Stage `collect`: one Minari dataset per (environment, kind), from params.yaml's `collect:`.

`python -m pipelines.collect --env hopper --kind medium` builds one (what each dvc matrix stage
runs); without arguments it builds every env x kind of `collect.envs` and `collect.kinds`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging

from core.atomic import write_json
from datagen.collection.build import BuildPaths, build_dataset
from datagen.collection.config import CollectConfig, RecipeError
from datagen.collection.reference import read_reference
from pipelines.checks import select_envs
from pipelines.params import global_params, load_params, section
from pipelines.paths import (
    DATASETS_ROOT,
    SHARDS_ROOT,
    behavior_dir,
    collect_metrics_path,
    reference_path,
)
from pipelines.provenance import code_permalink
from pipelines.stage import run_stage

log = logging.getLogger("pipelines.collect")


def params_hash(config: CollectConfig, namespace: str, seed: int) -> str:
    """The hash of the params behind one environment's datasets (recorded in their provenance).

    Only what can shape them counts: this environment's entry of `envs` and `ref_scores`, not the
    other environments nor the list of kinds built, so listing another environment leaves these
    datasets' metadata as it was. Where the work runs (backend, workers, ray_address) never
    changes a dataset either."""
    content = config.model_dump(
        mode="json", exclude={"backend", "workers", "ray_address", "envs", "kinds", "ref_scores"}
    )
    content["env"] = {namespace: config.envs[namespace]}
    content["ref_scores"] = config.ref_source(namespace)
    return hashlib.sha256(json.dumps([content, seed], sort_keys=True).encode()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", help="a namespace of collect.envs, e.g. hopper (default: all)")
    parser.add_argument("--kind", help="one of collect.kinds (default: all)")
    args = parser.parse_args()
    params = load_params()
    g = global_params(params)
    config = section(params, CollectConfig)
    if args.kind is not None and args.kind not in config.kinds:
        raise RecipeError(f"--kind {args.kind!r} is not in collect.kinds {config.kinds}")
    envs = select_envs(config.envs, args.env)
    for namespace, env_id in envs.items():
        reference = read_reference(reference_path(namespace))
        paths = BuildPaths(behavior_dir(namespace), DATASETS_ROOT, SHARDS_ROOT)
        provenance = {"params_sha256": params_hash(config, namespace, g.seed)}
        for kind in [args.kind] if args.kind else config.kinds:
            summary = build_dataset(
                env_id, namespace, kind, config, g.seed, reference, paths, provenance,
                code_permalink(),
            )  # fmt: skip
            write_json(collect_metrics_path(namespace, kind), summary)
            log.info(
                "%s/%s-v0: %d steps, return %.1f, normalised score %.1f (%s reference)",
                namespace, kind, summary["steps"], summary["return_mean"],
                summary["normalized_score"], summary["ref_score_source"],
            )  # fmt: skip


if __name__ == "__main__":
    run_stage(main)
