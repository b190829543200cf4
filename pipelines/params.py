"""params.yaml: its whole schema, one model of every section built from the libraries' config
models, and reading it. The only module that reads params.yaml (`OFFLINE_RL_PARAMS` names another
file); every default is the value params.yaml states (tests/pipelines/test_params_defaults.py).

A stage validates only the sections it reads (`section`), so a typo in another stage's section
does not stop it; `python -m pipelines.validate` checks them all. Importing this needs no torch:
every config model lives in a torch-free module of its package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import Field, create_model, field_validator

from core.config import ConfigError, StrictModel, choice_error, parse_config
from core.devices import Device, check_devices
from datagen.behavior.config import BehaviorConfig
from datagen.collection.config import CollectConfig
from datagen.preprocessing.config import PreprocessConfig
from datagen.sources.config import DownloadConfig
from offline_rl.algos.config import ALGO_CONFIGS, AlgoConfig
from offline_rl.config import LoopConfig, WandbConfig

PARAMS_FILE = Path(os.environ.get("OFFLINE_RL_PARAMS", "params.yaml"))
ModelT = TypeVar("ModelT", bound=StrictModel)


class Globals(StrictModel):
    """Top-level keys of params.yaml that several stages read."""

    # The environment of the offline half (download, preprocess, train, evaluate); behaviour
    # training and collection run for every environment of collect.envs instead.
    env: str = Field(default="Hopper-v5", min_length=1)
    seed: int = Field(default=0, ge=0, lt=2**31)
    lr: float = Field(default=1e-3, gt=0, le=1)  # every algos.* learning rate left null


class TrainConfig(LoopConfig):
    """The train stage's section: the training loop plus what to train, on what, where."""

    algo: str = "td3_bc"
    dataset: str = "medium"  # an entry of preprocess.datasets: trains on its training split
    device: Device = "auto"
    # Where the training rows live (offline_rl/storage.py): loaded onto the device, read from the
    # memory-mapped file batch by batch, or disk when they would take over half the free memory.
    storage: Literal["memory", "disk", "auto"] = "auto"
    # Training seeds, trained side by side in one process; apart from the top-level `seed`,
    # which generates the data, so a seed grid reruns only train and evaluate.
    seeds: tuple[int, ...] = (0,)

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("at least one training seed")
        if len(set(value)) != len(value):
            raise ValueError(f"training seeds must differ, got {list(value)}")
        if min(value) < 0:
            raise ValueError(f"training seeds must not be negative, got {list(value)}")
        return value

    @field_validator("algo")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in ALGO_CONFIGS:
            raise ValueError(choice_error("algorithm", value, ALGO_CONFIGS))
        return value


class EvaluateConfig(StrictModel):
    episodes: int = Field(default=10, ge=1)
    video: bool = True
    device: Device = "auto"


# `algos`: one section per registered algorithm, every one validated whatever train.algo is.
AlgosConfig = create_model(
    "AlgosConfig",
    __base__=StrictModel,
    **{name: (model, model()) for name, model in ALGO_CONFIGS.items()},  # type: ignore[call-overload]
)


class Params(Globals):
    """The whole of params.yaml: the globals and one section per stage or concern."""

    behavior: BehaviorConfig = BehaviorConfig()
    collect: CollectConfig = CollectConfig()
    download: DownloadConfig = DownloadConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    train: TrainConfig = TrainConfig()
    algos: AlgosConfig = AlgosConfig()  # type: ignore[valid-type]
    evaluate: EvaluateConfig = EvaluateConfig()
    wandb: WandbConfig = WandbConfig()


# Section name -> its model, in the file's order.
SECTIONS: dict[str, type[StrictModel]] = {
    name: field.annotation
    for name, field in Params.model_fields.items()
    if name not in Globals.model_fields and isinstance(field.annotation, type)
}
_SECTION_OF = {model: name for name, model in SECTIONS.items()}


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
    allowed = set(Params.model_fields)
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise ConfigError(f"{path}: {choice_error('top-level key', unknown[0], allowed)}")
    return data


def global_params(params: dict[str, Any]) -> Globals:
    keys = {k: params[k] for k in Globals.model_fields if k in params}
    return parse_config(Globals, keys, "", str(PARAMS_FILE))


def section(params: dict[str, Any], model: type[ModelT]) -> ModelT:
    """The section of params.yaml whose model is `model`, validated; a device it names must exist
    on this machine (`train.device: cuda` without CUDA fails here, before the stage allocates
    anything)."""
    name = _SECTION_OF[model]
    value = params.get(name)
    if name == "algos":
        return _algos(value)  # type: ignore[return-value]
    if value is not None and not isinstance(value, dict):
        raise ConfigError(f"{PARAMS_FILE}: {name} must be a mapping, got {value!r}")
    config = parse_config(model, value, name, str(PARAMS_FILE))
    check_devices(config, name, str(PARAMS_FILE))
    return config


def _algos(value: Any) -> StrictModel:
    """Every algorithm's section (those params.yaml leaves out take their defaults), naming an
    unknown algorithm as such rather than as an unknown key."""
    algos = value or {}
    if not isinstance(algos, dict):
        raise ConfigError(
            f"{PARAMS_FILE}: algos must be a mapping of algorithm names, got {algos!r}"
        )
    for name in algos:
        if name not in ALGO_CONFIGS:
            raise ConfigError(
                f"{PARAMS_FILE}: algos: {choice_error('algorithm', str(name), ALGO_CONFIGS)}"
            )
    configs = {
        name: parse_config(model, algos.get(name), f"algos.{name}", str(PARAMS_FILE))
        for name, model in ALGO_CONFIGS.items()
    }
    return AlgosConfig(**configs)  # type: ignore[no-any-return]


def train_configs(params: dict[str, Any]) -> tuple[Globals, TrainConfig, AlgoConfig]:
    """Everything the train stage reads: the globals, its section and the chosen algorithm's
    config with the top-level `lr` where it leaves one null. Every algos.* entry is validated (a
    typo in an algorithm not chosen now would otherwise surface only in a later experiment), and
    train.dataset must be an entry of preprocess.datasets."""
    g = global_params(params)
    config = section(params, TrainConfig)
    algos = section(params, AlgosConfig)
    datasets = section(params, PreprocessConfig).datasets
    if config.dataset not in datasets:
        raise ConfigError(
            f"{PARAMS_FILE}: train.dataset: {choice_error('dataset', config.dataset, datasets)} "
            "(the entries of preprocess.datasets)"
        )
    algo_config: AlgoConfig = getattr(algos, config.algo)
    return g, config, algo_config.with_default_lr(g.lr)
