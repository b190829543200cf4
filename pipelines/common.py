"""What every stage entry shares: reading its params, the wandb logger, paths and logging.

This is the only place that reads params.yaml or environment variables for settings.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import Field

from core.config import ConfigError, StrictModel, choice_error, parse_config
from core.devices import check_devices
from core.errors import PipelineError
from offline_rl.config import WandbConfig
from offline_rl.tracking import RunLogger, SeedsLogger

PARAMS_FILE = Path(os.environ.get("OFFLINE_RL_PARAMS", "params.yaml"))
ModelT = TypeVar("ModelT", bound=StrictModel)
log = logging.getLogger("pipelines")


class Globals(StrictModel):
    """Top-level keys of params.yaml that several stages read."""

    # The environment of the offline half (download, preprocess, train, evaluate); behaviour
    # training and collection run for every environment of collect.envs instead.
    env: str = Field(default="Hopper-v5", min_length=1)
    seed: int = Field(default=0, ge=0, lt=2**31)
    lr: float = Field(default=3e-4, gt=0, le=1)


# Every top-level key params.yaml may hold: the shared globals and one section per stage or concern.
# A new section must be added here, or every stage rejects the file.
SECTIONS = frozenset(
    {"behavior", "collect", "download", "preprocess", "train", "algos", "evaluate", "wandb"}
)


def load_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    """Read params.yaml and reject unknown top-level keys before any stage looks at its section."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (run from the repository root)") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML ({error})") from None
    return check_top_level(data, path)


def check_top_level(data: Any, path: Path = PARAMS_FILE) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    allowed = SECTIONS | set(Globals.model_fields)
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise ConfigError(f"{path}: {choice_error('top-level key', unknown[0], allowed)}")
    return data


def section(params: dict[str, Any], name: str, model: type[ModelT]) -> ModelT:
    """The section `name` of params.yaml as `model`; a device it names must exist on this machine
    (`train.device: cuda` without CUDA fails here, before the stage allocates anything)."""
    value = params.get(name)
    if value is not None and not isinstance(value, dict):
        raise ConfigError(f"{PARAMS_FILE}: {name} must be a mapping, got {value!r}")
    config = parse_config(model, value, name, str(PARAMS_FILE))
    check_devices(config, name, str(PARAMS_FILE))
    return config


def global_params(params: dict[str, Any]) -> Globals:
    keys = {k: params[k] for k in Globals.model_fields if k in params}
    return parse_config(Globals, keys, "", str(PARAMS_FILE))


def known_env(env_id: str, key: str = "env") -> None:
    """Fail naming `key` (the params.yaml key that holds `env_id`) unless gymnasium knows it and
    its spaces are ones the pipeline supports (`space_problem`)."""
    import gymnasium as gym

    if env_id not in gym.registry:
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
    """Why the code cannot work with `env_id`'s spaces (None when it can): networks, datasets and
    transitions take flat float vectors, so observations and actions must be 1-D Box spaces.
    Discrete or image spaces fail here, naming the space, before any stage does work."""
    import gymnasium as gym

    try:
        env = gym.make(env_id)
    except Exception as error:  # a missing extra (box2d, ale-py) or a broken registration
        return f"cannot be created here ({type(error).__name__}: {error})"
    try:
        for name, space in (("observation", env.observation_space), ("action", env.action_space)):
            if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
                return (
                    f"has {name} space {space}; only flat continuous spaces (a 1-D Box, as in "
                    "the MuJoCo tasks) are supported for observations and actions"
                )
    finally:
        env.close()
    return None


def select_envs(envs: dict[str, str], namespace: str | None) -> dict[str, str]:
    """The entries of `collect.envs` a stage run works on: the one `--env` names, or all."""
    if namespace is None:
        return dict(envs)
    if namespace not in envs:
        raise ConfigError(
            f"{PARAMS_FILE}: collect.envs: {choice_error('namespace', namespace, list(envs))} "
            "(--env names a key of collect.envs)"
        )
    return {namespace: envs[namespace]}


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
    from transitions.metadata import read_meta, split_size

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


# Generated Minari datasets: <root>/<namespace>/<kind>-v0 (collect@<namespace>-<kind>) beside
# <root>/<namespace>/namespace_metadata.json (reference@<namespace>); MINARI_DATASETS_PATH points here.
DATASETS_ROOT = Path("data/datasets")


def behavior_dir(namespace: str) -> Path:
    """behavior@<namespace>'s checkpoints and replay buffer, read by reference and collect."""
    return Path("models/behavior") / namespace


def behavior_resume_path(namespace: str) -> Path:
    """behavior@<namespace>'s resume state: a persisted DVC out outside the folder DVC deletes."""
    return Path("models/behavior_resume") / f"{namespace}.pt"


def behavior_curves(namespace: str) -> dict[str, Path]:
    """behavior@<namespace>'s CSV curves, one folder per curve so the top-level `plots:` of
    dvc.yaml draws every environment's file from one entry (plots/behavior/eval/<ns>.csv, ...)."""
    root = Path("plots/behavior")
    return {
        "train": root / "episodes" / f"{namespace}.csv",
        "losses": root / "losses" / f"{namespace}.csv",
        "eval": root / "eval" / f"{namespace}.csv",
    }


def behavior_metrics_path(namespace: str) -> Path:
    return Path("metrics/behavior") / f"{namespace}.json"


def reference_path(namespace: str) -> Path:
    """The reference stage's scores for one environment of `collect.envs`."""
    return Path("metrics/reference") / f"{namespace}.json"


def dataset_namespace(env_id: str) -> str:
    """Hopper-v5 -> hopper: datasets live at data/datasets/<namespace>/<kind>-v0."""
    return env_id.split("/")[-1].split("-v")[0].lower()


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


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def wandb_dir() -> Path:
    """Where wandb writes its run folders (`<dir>/wandb/...`).

    `dvc exp run --queue` and `--temp` run each experiment in a temporary copy of the repository
    under .dvc/tmp/exps/ that is deleted afterwards; DVC sets DVC_ROOT to the original repository
    there, so run files written under it survive. WANDB_DIR, when set, wins.
    """
    return Path(os.environ.get("WANDB_DIR") or os.environ.get("DVC_ROOT") or ".").resolve()


def dvc_md5(path: Path, lock_file: Path = Path("dvc.lock")) -> str | None:
    """The md5 DVC records for the file `path`: read from dvc.lock when its size still matches,
    else computed (DVC 3 hashes a file's bytes with plain md5). None if the file is missing."""
    if not path.is_file():
        return None
    size = path.stat().st_size
    try:
        lock = yaml.safe_load(lock_file.read_text()) or {}
    except (OSError, yaml.YAMLError):
        lock = {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if out.get("path") == path.as_posix() and out.get("size") == size and out.get("md5"):
                return str(out["md5"])
    digest = hashlib.md5()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    config = section(params, "wandb", WandbConfig)
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


def progress_enabled() -> bool:
    return not os.environ.get("CI") and sys.stderr.isatty()


class StageInterrupted(BaseException):
    """SIGINT or SIGTERM: unwinds like KeyboardInterrupt so temporary outputs are removed."""


def _interrupt(signum: int, frame: object) -> None:
    raise StageInterrupted(signal.Signals(signum).name)


def default_to_offscreen_rendering() -> None:
    """On a Linux machine without a display, MuJoCo renders (the evaluate stage's video) through
    EGL unless MUJOCO_GL says otherwise: without it, MuJoCo looks for a window system and a plain
    `dvc exp run` from an SSH shell would skip every video. A PYOPENGL_PLATFORM of osmesa is
    followed (MuJoCo refuses EGL beside it). Must run before mujoco is imported."""
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    platform = os.environ.get("PYOPENGL_PLATFORM") or "egl"
    if sys.platform.startswith("linux") and headless and platform in ("egl", "osmesa"):
        os.environ.setdefault("MUJOCO_GL", platform)


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage entry: the pipeline's own errors (`PipelineError`: bad params, bad or missing
    input files, checkpoints, a failed command) end in one clear `error:` line and exit code 2.
    Anything else is a bug (a shape error, a CUDA fault) and keeps its full traceback and Python's
    exit code 1; OFFLINE_RL_DEBUG=1 shows the traceback of a PipelineError too.

    SIGTERM (what `kill` and DVC send) is turned into an exception like SIGINT, so `atomic_path`
    and `atomic_dir` delete their temporaries; the last checkpoint stays for the rerun to resume.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    # PyOpenGL announces at INFO, whenever MuJoCo's renderer loads, that an optional speed-up
    # module is missing: noise before every stage's first line.
    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    default_to_offscreen_rendering()
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main()
    except PipelineError as error:
        if os.environ.get("OFFLINE_RL_DEBUG"):
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except StageInterrupted as signal_name:
        print(f"error: interrupted by {signal_name}; rerun to resume", file=sys.stderr)
        sys.exit(130)
