"""A table of bad params: each fails validation with a message naming the key, the value and what
is allowed, and the real stage entries stop on them before doing any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config import ConfigError
from pipelines.params import load_params
from pipelines.validate import validate_params
from tests.pipelines.params_edit import REPO, with_changes
from tests.pipelines.stage_runner import stage_env

# (case id, dotted key -> new value, fragments the message must contain)
CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "unknown top-level section",
        {"trian": {"steps": 5}},
        ["unknown top-level key 'trian'", "did you mean 'train'?", "allowed:"],
    ),
    ("unknown top-level key", {"sed": 1}, ["'sed'", "did you mean 'seed'?"]),
    (
        "unknown key in a section",
        {"train.stpes": 10},
        ["train.stpes: unknown key", "did you mean 'steps'?", "allowed keys:"],
    ),
    (
        "unknown nested key",
        {"behavior.sac.lrr": 0.1},
        ["behavior.sac.lrr: unknown key", "did you mean 'lr'?", "init_temperature"],
    ),
    (
        "unknown key in a dataset recipe",
        {"collect.datasets.random.polcy": "random"},
        ["collect.datasets.random.polcy: unknown key", "did you mean 'policy'?"],
    ),
    (
        "unknown key in an algorithm",
        {"algos.td3_bc.alhpa": 2.5},
        ["algos.td3_bc.alhpa: unknown key", "did you mean 'alpha'?"],
    ),
    ("unknown wandb key", {"wandb.projcet": "x"}, ["wandb.projcet", "did you mean 'project'?"]),
    (
        "unknown environment",
        {"env": "Hoper-v5"},
        ["unknown environment 'Hoper-v5'", "did you mean 'Hopper-v5'?", "HalfCheetah-v5"],
    ),
    (
        "unknown environment in collect.envs",
        {"collect.envs": {"hopper": "Hopper-v5", "hoper": "Hoper-v5"}},
        ["collect.envs.hoper: unknown environment 'Hoper-v5'", "did you mean 'Hopper-v5'?"],
    ),
    (
        "env that collect.envs does not generate",
        {"env": "Walker2d-v5"},
        [
            "params.yaml: env: 'Walker2d-v5' is not an environment of collect.envs",
            "{hopper: Hopper-v5}",
            "add {walker2d: Walker2d-v5} to collect.envs",
        ],
    ),
    (
        "unknown algorithm",
        {"train.algo": "td3bc"},
        [
            "train.algo = 'td3bc'",
            "did you mean 'td3_bc'?",
            "allowed: awac, bc, cql, discrete_bc, discrete_cql, discrete_iql, dt, iql, rebrac, td3_bc",
        ],
    ),
    (
        "unknown algorithm section",
        {"algos.td3bc": {"alpha": 2.5}},
        ["algos: unknown algorithm 'td3bc'", "did you mean 'td3_bc'?"],
    ),
    ("negative seed", {"seed": -1}, ["seed = -1", "greater than or equal to 0"]),
    ("seed of the wrong type", {"seed": "zero"}, ["seed = 'zero'", "valid integer"]),
    ("zero learning rate", {"lr": 0}, ["lr = 0", "greater than 0"]),
    (
        "checkpoint beyond the step budget",
        {"behavior.checkpoint_steps": [1000, 2000]},
        ["params.yaml: behavior: Value error, checkpoint_steps [2000] must lie in 1..steps (1500)"],
    ),
    (
        "zero batch size",
        {"behavior.batch_size": 0},
        ["behavior.batch_size = 0", "greater than or equal to 1"],
    ),
    (
        "discount above one",
        {"behavior.sac.discount": 1.5},
        ["behavior.sac.discount = 1.5", "less than or equal to 1"],
    ),
    (
        "hidden sizes as a string",
        {"behavior.sac.hidden": "256"},
        ["behavior.sac.hidden = '256'", "valid tuple"],
    ),
    (
        "unknown dataset policy",
        {"collect.datasets.medium.policy": "mediun"},
        ["collect.datasets.medium.policy = 'mediun'", "did you mean 'medium'?", "step_<N>"],
    ),
    (
        "dataset name with capitals",
        {"collect.datasets.Medium": {"policy": "medium", "steps": 10}},
        ["dataset names ['Medium']", "lowercase"],
    ),
    (
        "misspelt choice",
        {"collect.ref_scores": "d4lr"},
        ["collect.ref_scores = 'd4lr'", "'d4rl' or 'measured'", "did you mean 'd4rl'?"],
    ),
    ("too many environments", {"collect.num_envs": 1000}, ["collect.num_envs = 1000", "256"]),
    (
        "misspelt compression",
        {"preprocess.compression": "gzp"},
        ["preprocess.compression = 'gzp'", "did you mean 'gzip'?"],
    ),
    (
        "no dataset to preprocess",
        {"preprocess.datasets": []},
        ["preprocess.datasets", "at least 1"],
    ),
    (
        "chunk too small",
        {"preprocess.chunk_rows": 0},
        ["preprocess.chunk_rows = 0", "greater than or equal to 1"],
    ),
    (
        "no reader process",
        {"preprocess.workers": 0},
        ["preprocess.workers = 0", "greater than or equal to 1"],
    ),
    (
        "unknown device",
        {"train.device": "gpu"},
        ["train.device = 'gpu'", "auto|cpu|mps|cuda"],
    ),
    (
        "misspelt storage",
        {"train.storage": "disc"},
        ["train.storage = 'disc'", "'memory', 'disk' or 'auto'", "did you mean 'disk'?"],
    ),
    (
        "fractional step count",
        {"train.batch_size": 256.5},
        ["train.batch_size = 256.5", "fractional part"],
    ),
    ("section that is not a mapping", {"train": "fast"}, ["train must be a mapping", "'fast'"]),
    (
        "zero evaluation episodes",
        {"evaluate.episodes": 0},
        ["evaluate.episodes = 0", "greater than or equal to 1"],
    ),
    (
        "misspelt wandb mode",
        {"wandb.mode": "onlien"},
        ["wandb.mode = 'onlien'", "did you mean 'online'?"],
    ),
    (
        "algorithm section that is not a mapping",
        {"algos.bc": [256, 256]},
        ["algos.bc must be a mapping", "[256, 256]"],
    ),
    ("algos that is a list", {"algos": ["bc"]}, ["algos must be a mapping", "['bc']"]),
]


@pytest.mark.parametrize(
    ("changes", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_params_message(tmp_path: Path, changes: dict[str, Any], fragments: list[str]) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(with_changes(changes)))
    with pytest.raises(ConfigError) as error:
        validate_params(load_params(path))
    message = str(error.value)
    assert "params.yaml" in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_the_table_has_enough_cases() -> None:
    assert len(CASES) >= 20


def test_valid_params_pass() -> None:
    validate_params(load_params(REPO / "params.yaml"))
    validate_params(with_changes({}))


# Each entry starts a Python process (~8 s here), so only two run in the default suite.
STAGE_CASES = [
    pytest.param("train", {"train.stpes": 10}, "did you mean 'steps'?"),
    pytest.param("behavior", {"collect.envs": {"hoper": "Hoper-v5"}}, "did you mean 'Hopper-v5'?"),
    pytest.param("train", {"trian": {}}, "did you mean 'train'?", marks=pytest.mark.slow),
    pytest.param(
        "collect",
        {"collect.datasets.medium.policy": "mediun"},
        "did you mean 'medium'?",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "preprocess",
        {"env": "Walker2d-v5"},
        "env: 'Walker2d-v5' is not an environment of collect.envs",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize(("stage", "changes", "fragment"), STAGE_CASES)
def test_stage_entry_stops_before_any_work(
    tmp_path: Path, stage: str, changes: dict[str, Any], fragment: str
) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_changes(changes)))
    result = subprocess.run(
        [sys.executable, "-m", f"pipelines.{stage}"],
        cwd=tmp_path,
        env={**stage_env(REPO), "WANDB_MODE": "disabled"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: params.yaml"), result.stderr
    assert fragment in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # no output, no log
