"""Params that are valid in form but that this machine or this data cannot run: environments
gymnasium lacks or whose spaces the pipeline does not take, `--env` names outside collect.envs,
an `env` with no generated datasets, a transitions file of another task or too few rows. Each is
refused before a stage does any work, naming the params.yaml key (docs/reliability.md)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

from core.config import ConfigError, choice_error
from datagen.collection.config import dataset_namespace
from pipelines.params import PARAMS_FILE
from transitions.metadata import read_meta, split_size


def known_env(env_id: str, key: str = "env") -> None:
    """Fail naming `key` (the params.yaml key that holds `env_id`) unless gymnasium knows it and
    its spaces are ones the pipeline supports (`space_problem`)."""
    import gymnasium as gym

    from core.envs import env_registered

    if not env_registered(env_id):
        mujoco = [
            k
            for k, spec in gym.registry.items()
            if "mujoco" in str(spec.entry_point) and k.endswith("-v5")
        ]
        raise ConfigError(f"{PARAMS_FILE}: {key}: {choice_error('environment', env_id, mujoco)}")
    problem = space_problem(env_id)
    if problem is not None:
        raise ConfigError(f"{PARAMS_FILE}: {key}: {env_id!r} {problem}")


@functools.cache
def space_problem(env_id: str) -> str | None:
    """Why the code cannot work with `env_id`'s spaces (None when it can): transitions/spaces.py
    is the one owner of which spaces are supported (Box or Discrete actions, Box or Dict-of-Box
    observations); anything else fails here, naming the space, before any stage does work."""
    from core.envs import make_env
    from transitions.spaces import SpaceError, action_layout, observation_layout

    try:
        env = make_env(env_id)
    except Exception as error:  # a missing extra (box2d, ale-py) or a broken registration
        return f"cannot be created here ({type(error).__name__}: {error})"
    try:
        action_layout(env.action_space)
        observation_layout(env.observation_space)
    except SpaceError as error:
        return str(error)
    finally:
        env.close()
    return None


def select_envs(envs: dict[str, str], namespace: str | None) -> dict[str, str]:
    """The entries of `collect.envs` a stage run works on, the one `--env` names or all, each an
    environment the pipeline can run (`known_env`): every one is checked before any work."""
    if namespace is not None and namespace not in envs:
        raise ConfigError(
            f"{PARAMS_FILE}: collect.envs: {choice_error('namespace', namespace, list(envs))} "
            "(--env names a key of collect.envs)"
        )
    selected = dict(envs) if namespace is None else {namespace: envs[namespace]}
    for name, env_id in selected.items():
        known_env(env_id, f"collect.envs.{name}")
    return selected


def offline_namespace(env_id: str, envs: dict[str, str]) -> str:
    """The collect.envs namespace whose generated datasets the offline stages read for `env`.

    The top-level `env` is the environment preprocess, train and evaluate work on; datasets are
    generated for the environments of collect.envs, so `env` must be one of them whenever
    preprocess reads a generated dataset.
    """
    for namespace, listed in envs.items():
        if listed == env_id:
            return namespace
    listed = ", ".join(f"{ns}: {id_}" for ns, id_ in envs.items())
    raise ConfigError(
        f"{PARAMS_FILE}: env: {env_id!r} is not an environment of collect.envs ({{{listed}}}); "
        "preprocess reads the generated datasets of `env`, so set env to one of them or add "
        f"{{{dataset_namespace(env_id)}: {env_id}}} to collect.envs"
    )


def check_training_data(env_id: str, dataset: str, batch_size: int, path: Path) -> None:
    """What train checks before it loads or allocates anything: the transitions file of
    `train.dataset` at `path` holds data of params.yaml's `env` (train takes its environment from
    the file, so a stale file would silently train and evaluate another task), and at least
    `train.batch_size` training rows (a larger batch would gather more rows than the data holds,
    growing memory until the kernel kills the run). Reads the file's header only."""

    known_env(env_id)
    meta = read_meta(path)
    if meta.env_id != env_id:
        raise ConfigError(
            f"{PARAMS_FILE}: env = {env_id!r}, but {path} (train.dataset: {dataset}) holds "
            f"{meta.env_id} data; rerun preprocess for {env_id} (dvc repro) or set env: "
            f"{meta.env_id}"
        )
    rows = split_size(path, "train")
    if batch_size > rows:
        raise ConfigError(
            f"{PARAMS_FILE}: train.batch_size = {batch_size}: more than the {rows} training rows "
            f"of {path} (train.dataset: {dataset}); use at most {rows}"
        )


def reads_generated(names: Iterable[str]) -> bool:
    """Whether any preprocess.datasets entry names a generated kind: a part without "/" ("medium",
    "medium+expert"); a part with one is an imported id (data/imported/<id>)."""
    return any("/" not in part for name in names for part in name.split("+"))
