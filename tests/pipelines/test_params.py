"""Every stage validates its params before doing any work, and names what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.config import ConfigError
from datagen.behavior.config import BehaviorConfig
from datagen.collection.config import CollectConfig
from pipelines.checks import select_envs
from pipelines.fidelity import read_preset
from pipelines.params import TrainConfig, global_params, load_params, section
from pipelines.validate import validate_params

REPO = Path(__file__).resolve().parents[2]


def test_default_params_validate() -> None:
    params = load_params(REPO / "params.yaml")
    global_params(params)
    section(params, BehaviorConfig)
    section(params, TrainConfig)


def test_unknown_key_is_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as error:
        section({"train": {"stpes": 10}}, TrainConfig)
    message = str(error.value)
    assert "train.stpes" in message and "did you mean 'steps'" in message


def test_unknown_algorithm_lists_choices() -> None:
    with pytest.raises(ConfigError, match=r"train.algo = 'td3bc'.*did you mean 'td3_bc'"):
        section({"train": {"algo": "td3bc"}}, TrainConfig)


def test_out_of_range_value_names_key_and_value() -> None:
    with pytest.raises(ConfigError, match=r"behavior.steps = -5: .*greater than or equal to 1"):
        section({"behavior": {"steps": -5}}, BehaviorConfig)


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match=r"params.yaml: invalid YAML"):
        load_params(bad)


def test_tiny_params_fixture_is_the_default_with_smaller_numbers() -> None:
    default = yaml.safe_load((REPO / "params.yaml").read_text())
    tiny = yaml.safe_load((REPO / "tests/fixtures/tiny_params.yaml").read_text())
    assert default.keys() == tiny.keys()
    for name, value in default.items():
        if isinstance(value, dict):
            assert value.keys() == tiny[name].keys(), name


def test_the_d4rl_preset_validates_over_the_default_params() -> None:
    """params/d4rl.yaml's sections replace params.yaml's (docs/datasets.md): still valid, with
    D4RL's three environments each getting a behaviour run."""
    params = load_params(REPO / "params.yaml")
    params.update(yaml.safe_load((REPO / "params/d4rl.yaml").read_text()))
    validate_params(params)
    assert section(params, CollectConfig).envs == {
        "hopper": "Hopper-v5",
        "halfcheetah": "HalfCheetah-v5",
        "walker2d": "Walker2d-v5",
    }


def test_the_fidelity_preset_validates_and_names_its_grid() -> None:
    """params/fidelity-hopper.yaml: its sections over the defaults are valid params, and its own
    `fidelity:` section (never copied into params.yaml) is a valid grid."""
    sections, fidelity = read_preset(REPO / "params/fidelity-hopper.yaml")
    assert "fidelity" not in sections
    params = load_params(REPO / "params.yaml")
    params.update(sections)
    validate_params(params)
    assert fidelity.grid.algos == ["bc", "td3_bc", "iql"]
    assert set(fidelity.grid.datasets) <= set(params["preprocess"]["datasets"])


def test_env_need_not_be_generated_when_preprocess_reads_only_imported_datasets() -> None:
    params = load_params(REPO / "params.yaml")
    params["env"] = "Walker2d-v5"
    params["preprocess"]["datasets"] = ["mujoco/walker2d/medium-v0"]
    params["train"]["dataset"] = "mujoco/walker2d/medium-v0"
    validate_params(params)
    params["preprocess"]["datasets"] = ["mujoco/walker2d/medium-v0+medium"]
    with pytest.raises(ConfigError, match=r"env: 'Walker2d-v5' is not an environment of collect"):
        validate_params(params)


def test_select_envs_names_the_namespaces() -> None:
    envs = {"hopper": "Hopper-v5", "walker2d": "Walker2d-v5"}
    assert select_envs(envs, None) == envs
    assert select_envs(envs, "walker2d") == {"walker2d": "Walker2d-v5"}
    with pytest.raises(ConfigError, match=r"collect.envs: unknown namespace 'waker2d'.*walker2d"):
        select_envs(envs, "waker2d")


def test_the_pointmaze_preset_validates_over_the_default_params() -> None:
    """params/pointmaze-umaze.yaml's sections replace params.yaml's (docs/datasets.md): valid,
    the scripted behaviour on PointMaze, the agents reading the declared Dict keys."""
    params = load_params(REPO / "params.yaml")
    preset = yaml.safe_load((REPO / "params/pointmaze-umaze.yaml").read_text())
    for name, values in preset.items():  # dvc.yaml names some keys one by one: all must be there
        if isinstance(values, dict):
            assert set(params[name]) - {"sac", "dqn"} <= set(values), name
    params.update(preset)
    validate_params(params)
    assert section(params, BehaviorConfig).learner == "waypoint"
    assert section(params, CollectConfig).envs == {"pointmaze_umaze": "PointMaze_UMaze-v3"}
    select_envs(section(params, CollectConfig).envs, None)  # gymnasium-robotics registers it
