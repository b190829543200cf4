"""Several environments in one pipeline: `collect.envs` drives the behavior, reference and collect
stages, so one `dvc repro collect` builds behaviour policies, reference scores and datasets for every
listed environment, and listing another environment reruns nothing of those already built.

Runs `dvc` in throwaway copies of the repository on tiny budgets, with Hopper-v5 and Walker2d-v5:
D4RL's reference scores exist for both (a measured reference of policies this weak is too close to
random to rely on), their returns are positive from the start (HalfCheetah's are not, and "medium"
needs a positive expert return) and their episodes end early (short runs log episodes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import minari
import numpy as np
import pytest
import yaml

from tests.pipelines.stage_runner import copy_repo_with_changes, file_hashes, sh

pytestmark = pytest.mark.slow

ENVS = {"hopper": "Hopper-v5", "walker2d": "Walker2d-v5"}
KINDS = ["random", "medium"]
SMALL = {
    "behavior.steps": 600,
    "behavior.random_steps": 400,
    "behavior.batch_size": 64,
    "behavior.checkpoint_steps": [300, 600],
    "behavior.eval_episodes": 1,
    "behavior.log_interval": 100,
    "behavior.resume_every": 200,
    "behavior.sac.hidden": [32, 32],
    "collect.kinds": KINDS,
    "collect.datasets.random.steps": 300,
    "collect.datasets.medium.steps": 300,
    "collect.ref_scores": "d4rl",
    "collect.num_envs": 2,
    "collect.shard_steps": 300,
    "collect.workers": 1,
}
QUIET = {"WANDB_MODE": "disabled"}  # one wandb run per behaviour stage is not what is tested here


def stages(namespace: str) -> list[str]:
    return [
        f"behavior@{namespace}",
        f"reference@{namespace}",
        *(f"collect@{namespace}-{kind}" for kind in KINDS),
    ]


def outputs(namespace: str) -> list[str]:
    return [
        f"models/behavior/{namespace}",
        f"metrics/behavior/{namespace}.json",
        f"plots/behavior/eval/{namespace}.csv",
        f"metrics/reference/{namespace}.json",
        f"data/datasets/{namespace}",
        f"metrics/collect/{namespace}",
    ]


def make_repo(root: Path, envs: dict[str, str]) -> Path:
    return copy_repo_with_changes(root, {**SMALL, "collect.envs": envs})


def set_envs(repo: Path, envs: dict[str, str]) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["collect"]["envs"] = envs
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def lock_entries(repo: Path, names: list[str]) -> dict[str, Any]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {name: lock[name] for name in names}


def dvc_json(repo: Path, *args: str) -> Any:
    """The JSON a dvc command prints (its output may go on with log lines)."""
    out = sh(["dvc", *args, "--json"], repo).lstrip()
    return json.JSONDecoder().raw_decode(out)[0] if out else {}


def status(repo: Path) -> dict[str, Any]:
    """The collect stages and those upstream of them (behavior, reference) that would rerun."""
    result: dict[str, Any] = dvc_json(repo, "status", "--with-deps", "collect")
    return result


def ran(log: str) -> set[str]:
    return {line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage '")}


def h5_arrays(path: Path) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, node: (
                arrays.update({name: node[()]}) if isinstance(node, h5py.Dataset) else None
            )
        )
    return arrays


@dataclass
class Incremental:
    repo: Path
    first_log: str  # dvc repro collect with hopper only
    status_after_adding: dict[str, Any]  # dvc status once walker2d is listed
    second_log: str  # dvc repro collect with both
    hopper_hashes: tuple[dict[str, str], dict[str, str]]  # before and after adding the second env
    hopper_lock: tuple[dict[str, Any], dict[str, Any]]


@pytest.fixture(scope="module")
def incremental(tmp_path_factory: pytest.TempPathFactory) -> Incremental:
    """Hopper alone, then Walker2d added to collect.envs: two `dvc repro collect`."""
    repo = make_repo(tmp_path_factory.mktemp("incremental"), {"hopper": ENVS["hopper"]})
    first_log = sh(["dvc", "repro", "collect"], repo, env=QUIET)
    before = file_hashes(repo, outputs("hopper")), lock_entries(repo, stages("hopper"))
    set_envs(repo, ENVS)
    status_after_adding = status(repo)
    second_log = sh(["dvc", "repro", "collect"], repo, env=QUIET)
    after = file_hashes(repo, outputs("hopper")), lock_entries(repo, stages("hopper"))
    return Incremental(
        repo,
        first_log,
        status_after_adding,
        second_log,
        (before[0], after[0]),
        (before[1], after[1]),
    )


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Both environments listed from the start: a single `dvc repro collect`."""
    repo = make_repo(tmp_path_factory.mktemp("both"), ENVS)
    return repo, sh(["dvc", "repro", "collect"], repo, env=QUIET)


def test_one_repro_builds_behaviour_reference_and_datasets_for_every_env(
    both: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, log = both
    assert ran(log) == {name for ns in ENVS for name in stages(ns)}, log
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(repo / "data/datasets"))
    for namespace, env_id in ENVS.items():
        behavior = repo / "models/behavior" / namespace
        assert json.loads((behavior / "checkpoints.json").read_text())["env_id"] == env_id
        assert sorted(p.name for p in behavior.iterdir()) == [
            "checkpoints.json",
            "replay.h5",
            "step_300.pt",
            "step_600.pt",
        ]
        with h5py.File(behavior / "replay.h5", "r") as f:
            assert f.attrs["env_id"] == env_id and f["observations"].shape[0] == 600
        assert (repo / f"models/behavior_resume/{namespace}.pt").is_file()
        assert (repo / f"metrics/behavior/{namespace}.json").is_file()
        for curve in ("episodes", "losses", "eval"):
            assert (repo / f"plots/behavior/{curve}/{namespace}.csv").is_file()
        reference = json.loads((repo / f"metrics/reference/{namespace}.json").read_text())
        assert reference["env_id"] == env_id and reference["ref_score_source"] == "d4rl"
        for kind in KINDS:
            dataset = minari.load_dataset(f"{namespace}/{kind}-v0")
            assert dataset.env_spec is not None and dataset.env_spec.id == env_id
            assert dataset.total_steps == 300
            assert dataset.storage.metadata["ref_min_score"] == reference["ref_min_score"]
    assert status(repo) == {}
    # Each environment's curves are plots of their own (train's are missing: it did not run).
    shown = dvc_json(repo, "plots", "show")
    for namespace in ENVS:
        for curve in ("episodes", "losses", "eval"):
            assert f"plots/behavior/{curve}/{namespace}.csv" in shown["data"], shown["data"].keys()
    errors = [e for e in shown.get("errors", []) if "plots/behavior" in json.dumps(e)]
    assert not errors, errors


def test_listing_another_env_reruns_nothing_of_the_first(incremental: Incremental) -> None:
    assert ran(incremental.first_log) == set(stages("hopper")), incremental.first_log
    changed = set(incremental.status_after_adding)
    assert set(stages("walker2d")) <= changed, changed
    assert not [name for name in changed if "hopper" in name], changed
    log = incremental.second_log
    assert ran(log) == set(stages("walker2d")), log
    for name in stages("hopper"):
        assert f"Stage '{name}' didn't change, skipping" in log, log
    before, after = incremental.hopper_hashes
    assert before == after and any("data/datasets/hopper" in k for k in before)
    assert incremental.hopper_lock[0] == incremental.hopper_lock[1]
    assert status(incremental.repo) == {}


def test_an_env_added_later_equals_one_listed_from_the_start(
    incremental: Incremental, both: tuple[Path, str]
) -> None:
    """Same params and seed: the same policies and datasets, whichever way the env list grew."""
    later, start = incremental.repo, both[0]
    for namespace in ENVS:
        for name in ("models/behavior/{}/checkpoints.json", "metrics/reference/{}.json"):
            text = name.format(namespace)
            assert (later / text).read_text() == (start / text).read_text(), text
        files = [f"models/behavior/{namespace}/replay.h5"] + [
            f"data/datasets/{namespace}/{kind}-v0/data/main_data.hdf5" for kind in KINDS
        ]
        for path in files:
            arrays, expected = h5_arrays(later / path), h5_arrays(start / path)
            assert arrays.keys() == expected.keys(), path
            for key in arrays:
                np.testing.assert_array_equal(arrays[key], expected[key], err_msg=f"{path}:{key}")
        for kind in KINDS:
            metadata = f"data/datasets/{namespace}/{kind}-v0/data/metadata.json"
            mine, theirs = (json.loads((repo / metadata).read_text()) for repo in (later, start))
            assert mine["provenance"] == theirs["provenance"], metadata  # params, policies, seeds
