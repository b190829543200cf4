"""Where wandb runs land, the dataset hash in the run config, tags, and sweep arguments."""

from __future__ import annotations

from pathlib import Path

import pytest
from dvc_data.hashfile.hash import file_md5

from core.config import ConfigError
from pipelines.loggers import param_tags, wandb_dir
from pipelines.paths import dvc_md5
from pipelines.sweep_trial import set_args


def test_wandb_dir_is_the_original_repo_in_queued_experiments(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "repo"))  # what DVC sets in .dvc/tmp/exps/...
    assert wandb_dir() == tmp_path / "repo"
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "runs"))
    assert wandb_dir() == tmp_path / "runs"


def test_dataset_md5_is_dvcs(tmp_path: Path) -> None:
    data = tmp_path / "train.h5"
    data.write_bytes(b"transitions\r\n" * 1000)
    assert dvc_md5(data, tmp_path / "missing.lock") == file_md5(str(data))
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        f"stages:\n  preprocess:\n    outs:\n    - path: {data.as_posix()}\n"
        f"      md5: from-lock\n      size: {data.stat().st_size}\n"
    )
    assert dvc_md5(data, lock) == "from-lock"
    data.write_bytes(b"changed")  # the lock entry is stale: hash the file
    assert dvc_md5(data, lock) == file_md5(str(data))
    assert dvc_md5(tmp_path / "absent.h5", lock) is None


def test_tags_name_stage_env_algorithm_and_data() -> None:
    params = {"env": "Hopper-v5", "train": {"algo": "bc"}, "preprocess": {"datasets": ["medium"]}}
    assert param_tags(params, "train") == ["stage:train", "env:Hopper-v5", "algo:bc", "data:medium"]
    assert param_tags(params, "behavior") == ["stage:behavior", "env:Hopper-v5"]
    # behavior@walker2d trains an environment of collect.envs, not the top-level env
    assert param_tags(params, "behavior", "Walker2d-v5") == ["stage:behavior", "env:Walker2d-v5"]


def test_sweep_arguments_become_dvc_set_params() -> None:
    assert set_args(["lr=0.0003", "--train.algo=bc", "preprocess.datasets=[medium]"]) == [
        "-S", "lr=0.0003", "-S", "train.algo=bc", "-S", "preprocess.datasets=[medium]",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="'lr': expected key=value"):
        set_args(["lr"])
