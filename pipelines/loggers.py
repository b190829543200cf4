"""The loggers of the learning stages: wandb's mode and run folder, the run's name, group, tags and
config (params, git commit, DVC experiment), for one run or one per training seed."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from offline_rl.config import WandbConfig
from offline_rl.tracking import RunLogger, SeedsLogger
from pipelines.params import section
from pipelines.provenance import git_commit


def wandb_mode(config: WandbConfig) -> Literal["online", "offline", "disabled"]:
    mode = os.environ.get("WANDB_MODE") or config.mode
    if mode in ("online", "offline", "disabled"):
        return mode  # type: ignore[return-value]
    if mode == "dryrun":
        return "offline"
    has_key = bool(os.environ.get("WANDB_API_KEY")) or _netrc_has_wandb()
    return "online" if has_key else "offline"


def _netrc_has_wandb() -> bool:
    netrc = Path.home() / ".netrc"
    return netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def wandb_dir() -> Path:
    """Where wandb writes its run folders (`<dir>/wandb/...`).

    `dvc exp run --queue` and `--temp` run each experiment in a temporary copy of the repository
    under .dvc/tmp/exps/ that is deleted afterwards; DVC sets DVC_ROOT to the original repository
    there, so run files written under it survive. WANDB_DIR, when set, wins.
    """
    return Path(os.environ.get("WANDB_DIR") or os.environ.get("DVC_ROOT") or ".").resolve()


def param_tags(params: dict[str, Any], job_type: str, env_id: str | None = None) -> list[str]:
    """wandb tags: the ones listed in params plus env, algorithm and datasets, to filter runs.

    `env_id` is the environment the run works on when it is not the top-level `env` (behaviour
    training runs once per environment of collect.envs)."""
    tags = [f"stage:{job_type}"]
    env = env_id if env_id is not None else params.get("env")
    if isinstance(env, str):
        tags.append(f"env:{env}")
    train = params.get("train") or {}
    if job_type in ("train", "evaluate") and isinstance(train.get("algo"), str):
        tags.append(f"algo:{train['algo']}")
    datasets = (params.get("preprocess") or {}).get("datasets")
    if job_type in ("train", "evaluate") and isinstance(datasets, list):
        tags.append("data:" + "+".join(str(d) for d in datasets))
    return tags


def make_logger_factory(
    params: dict[str, Any],
    job_type: str,
    curves: dict[str, Path],
    run_config: dict[str, Any],
    stage_name: str | None = None,
    env_id: str | None = None,
) -> Callable[[str | None], RunLogger]:
    """A logger constructor taking the wandb run id to resume (None starts a new run).

    The run is named `<experiment>-<stage>` (`stage_name`, default the job type: `behavior@hopper`
    for a foreach stage) and grouped by the DVC experiment (DVC_EXP_NAME), so a wandb run and a
    `dvc exp show` row are found from each other. `env_id`: see `param_tags`.
    """
    config = section(params, WandbConfig)
    experiment = os.environ.get("DVC_EXP_NAME")
    name = f"{experiment}-{stage_name or job_type}" if experiment else None
    full_config = {**params, "git_commit": git_commit(), "dvc_experiment": experiment}
    full_config.update(run_config)

    def factory(run_id: str | None) -> RunLogger:
        return RunLogger(
            config,
            mode=wandb_mode(config),
            job_type=job_type,
            name=name,
            group=experiment or "workspace",
            run_config=full_config,
            run_id=run_id,
            wandb_dir=wandb_dir(),
            curves=curves,
            extra_tags=param_tags(params, job_type, env_id),
        )

    return factory


def make_seeds_logger_factory(
    params: dict[str, Any],
    job_type: str,
    curves: dict[str, Path],
    run_config: dict[str, Any],
    seeds: tuple[int, ...],
) -> Callable[[list[str | None] | None], SeedsLogger]:
    """A logger constructor for a run of several training seeds, taking the wandb run ids to
    resume (None starts new runs): one wandb run per seed, named `<experiment>-<stage>-seed<k>`
    and in the experiment's group, its config carrying `train_seed`."""

    def factory(run_ids: list[str | None] | None) -> SeedsLogger:
        ids = run_ids or [None] * len(seeds)
        runs = [
            make_logger_factory(
                params,
                job_type,
                {},
                run_config | {"train_seed": seed},
                stage_name=f"{job_type}-seed{seed}",
            )(run_id)
            for seed, run_id in zip(seeds, ids, strict=True)
        ]
        return SeedsLogger(seeds, runs, curves)

    return factory
