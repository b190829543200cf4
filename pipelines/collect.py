"""Stage `collect`: one Minari dataset per (environment, kind), from params.yaml's `collect:`.

`python -m pipelines.collect --env hopper --kind medium` builds one (what each dvc matrix stage
runs); without arguments it builds every env x kind of `collect.envs` and `collect.kinds`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import subprocess
from pathlib import Path

from datagen.build import BuildPaths, build_dataset, read_reference
from datagen.recipes import CollectConfig, RecipeError
from offline_rl.atomic import write_json
from pipelines.common import (
    BEHAVIOR_DIR,
    git_commit,
    global_params,
    known_env,
    load_params,
    reference_path,
    run_stage,
    section,
)

PATHS = BuildPaths(
    behavior_dir=BEHAVIOR_DIR,
    datasets_root=Path("data/datasets"),
    shards_root=Path("data/shards"),  # resume points of interrupted collections (git-ignored)
)
log = logging.getLogger("pipelines.collect")


def code_permalink() -> str:
    remote = subprocess.run(
        ["git", "config", "--get", "remote.origin.url"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return f"{remote or 'local'}@{git_commit()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", help="a namespace of collect.envs, e.g. hopper (default: all)")
    parser.add_argument("--kind", help="one of collect.kinds (default: all)")
    args = parser.parse_args()
    params = load_params()
    g = global_params(params)
    config = section(params, "collect", CollectConfig)
    for name, value, allowed in (
        ("env", args.env, list(config.envs)),
        ("kind", args.kind, config.kinds),
    ):
        if value is not None and value not in allowed:
            raise RecipeError(f"--{name} {value!r} is not in collect.{name}s {allowed}")
    # Where the work runs never changes a dataset, so it stays out of the provenance hash.
    content = config.model_dump(mode="json", exclude={"backend", "workers", "ray_address"})
    params_hash = hashlib.sha256(json.dumps([content, g.seed], sort_keys=True).encode()).hexdigest()
    for namespace in [args.env] if args.env else list(config.envs):
        env_id = config.envs[namespace]
        known_env(env_id)
        reference = read_reference(reference_path(namespace))
        for kind in [args.kind] if args.kind else config.kinds:
            summary = build_dataset(
                env_id, namespace, kind, config, g.seed, reference, PATHS,
                {"params_sha256": params_hash}, code_permalink(),
            )  # fmt: skip
            write_json(Path("metrics/collect") / namespace / f"{kind}.json", summary)
            log.info(
                "%s/%s-v0: %d steps, return %.1f, normalised score %.1f (%s reference)",
                namespace, kind, summary["steps"], summary["return_mean"],
                summary["normalized_score"], summary["ref_score_source"],
            )  # fmt: skip


if __name__ == "__main__":
    run_stage(main)
