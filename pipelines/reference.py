"""Stage `reference`: the reference scores that every dataset of one environment shares."""

from __future__ import annotations

import argparse

from datagen.build import check_behavior_env
from datagen.recipes import CollectConfig, make_policy
from datagen.reference import d4rl_reference, measure_reference
from offline_rl.atomic import write_json
from pipelines.common import (
    behavior_dir,
    global_params,
    known_env,
    load_params,
    reference_path,
    run_stage,
    section,
    select_envs,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", help="a namespace of collect.envs, e.g. hopper (default: all)")
    args = parser.parse_args()
    params = load_params()
    g = global_params(params)
    config = section(params, "collect", CollectConfig)
    envs = select_envs(config.envs, args.env)
    for namespace, env_id in envs.items():
        known_env(env_id, f"collect.envs.{namespace}")
    for namespace, env_id in envs.items():
        details: dict[str, object] = {}
        if config.ref_source(namespace) == "d4rl":
            reference = d4rl_reference(env_id)
        else:
            behavior = check_behavior_env(behavior_dir(namespace), env_id)
            random_policy, _ = make_policy("random", env_id, behavior, config, g.seed)
            expert_policy, expert = make_policy("expert", env_id, behavior, config, g.seed)
            reference, details = measure_reference(
                env_id, random_policy, expert_policy, config.ref_episodes, g.seed
            )
            details["expert_checkpoint"] = expert
        write_json(
            reference_path(namespace),
            {
                "env_id": env_id,
                "ref_min_score": reference.min_score,
                "ref_max_score": reference.max_score,
                "ref_score_source": reference.source,
                **details,
            },
        )


if __name__ == "__main__":
    run_stage(main)
