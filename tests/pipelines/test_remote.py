"""Sharing pipeline outputs through DVC remotes, against real storage.

One tiny `dvc repro` (module fixture) is pushed to an S3-compatible server (moto_server on
loopback) and reused by every test: the full round trip (delete cache and outputs, pull, identical
files, nothing to reproduce), the same against a local-folder remote, a colleague's clone that pulls
only the datasets and trains without regenerating them, another project that `dvc import`s the
datasets and trains on them, and credentials configured the way docs/remotes.md says never reaching
a tracked file.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import h5py
import minari
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from dvc.repo import Repo  # type: ignore[import-untyped]

from datagen.preprocessing.config import PreprocessConfig
from datagen.preprocessing.preprocess import preprocess
from offline_rl.algos.config import BCConfig
from offline_rl.algos.registry import make_algorithm
from offline_rl.buffer import ReplayBuffer
from tests.pipelines.s3_server import S3Server, moto_s3
from tests.pipelines.stage_runner import copy_repo, file_hashes, git_commit_all, sh
from transitions.loader import load_transitions

# One tiny `dvc repro` plus the transfers: minutes on a shared 2-core machine.
pytestmark = pytest.mark.slow

REMOTE = "storage"
UP_TO_DATE = "Data and pipelines are up to date."


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with moto_s3(log=tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, s3: S3Server) -> Path:
    """A repository after a tiny `dvc repro`, committed, with every output pushed to S3.

    The remote's URL and endpoint are committed (.dvc/config); the credentials only ever come from
    the environment here, as for a CI job.
    """
    repo = copy_repo(tmp_path_factory.mktemp("source"))
    sh(["dvc", "remote", "add", "-d", REMOTE, s3.url], repo)
    sh(["dvc", "remote", "modify", REMOTE, "endpointurl", s3.endpoint], repo)
    sh(["dvc", "repro"], repo)
    git_commit_all(repo, "tiny repro; S3 remote")
    sh(["dvc", "push"], repo, env=s3.env())
    return repo


def cached_outs(repo: Path) -> list[str]:
    """Every output DVC caches (and so pushes): the ones a pull must bring back."""
    with Repo(str(repo)) as dvc_repo:
        return sorted(str(out.def_path) for out in dvc_repo.index.outs if out.use_cache)


def delete_cache_and_outputs(repo: Path, outs: list[str]) -> None:
    """The cache and every cached output, and the whole data/datasets folder (preprocess's dep):
    a pull must bring back everything in it, not only the collect stages' folders."""
    shutil.rmtree(repo / ".dvc/cache")
    shutil.rmtree(repo / "data/datasets")
    for name in outs:
        path = repo / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)  # gone with data/datasets


def assert_round_trip(repo: Path, remote_args: list[str], env: dict[str, str]) -> None:
    outs = cached_outs(repo)
    expected = {
        "data/datasets/hopper/medium-v0",
        "data/transitions/medium.h5",
        "models/train/agents",
    }
    assert expected <= set(outs)
    before = file_hashes(repo, outs)
    assert "in sync" in sh(["dvc", "status", "--cloud", *remote_args], repo, env=env)

    delete_cache_and_outputs(repo, outs)
    assert not (repo / "data/datasets/hopper/medium-v0").exists()
    sh(["dvc", "pull", *remote_args], repo, env=env)

    assert file_hashes(repo, outs) == before
    assert UP_TO_DATE in sh(["dvc", "status"], repo)
    repro = sh(["dvc", "repro"], repo)
    assert "Running stage" not in repro, repro
    assert UP_TO_DATE in repro
    # git's own files in the wiped folder (DVC's .gitignore files, where DVC wrote any: the root
    # .gitignore already ignores the datasets) come back from git, not DVC; the tests after this
    # one find the repository whole.
    if sh(["git", "ls-files", "data/datasets"], repo).strip():
        sh(["git", "checkout", "--", "data/datasets"], repo)


def test_s3_round_trip_restores_identical_outputs(source: Path, s3: S3Server) -> None:
    assert_round_trip(source, [], s3.env())


def test_local_folder_round_trip(source: Path, tmp_path: Path) -> None:
    store = tmp_path / "dvc-store"
    # --local: this extra remote is this machine's business, not the repository's.
    sh(["dvc", "remote", "add", "--local", "folder", str(store)], source)
    try:
        sh(["dvc", "push", "-r", "folder"], source)
        assert any(store.rglob("*")), "nothing was pushed to the folder remote"
        assert_round_trip(source, ["-r", "folder"], {})
    finally:
        sh(["dvc", "remote", "remove", "--local", "folder"], source)


def test_pulled_datasets_train_without_regenerating(
    source: Path, s3: S3Server, tmp_path: Path
) -> None:
    """A colleague clones, pulls only the datasets, changes preprocessing and reproduces."""
    clone = tmp_path / "colleague"
    sh(["git", "clone", "-q", str(source), str(clone)], tmp_path)
    # generated (collect, and the namespace's metadata from reference) and downloaded (download)
    datasets = ["data/datasets", "data/imported"]
    sh(["dvc", "pull", "reference", "collect", "download"], clone, env=s3.env())
    assert file_hashes(clone, datasets) == file_hashes(source, datasets)
    assert not (clone / "models/behavior/hopper").exists()

    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["preprocess"]["reward_scale"] = 2.0
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = sh(["dvc", "repro", "--allow-missing", "train"], clone)

    for skipped in ("behavior@hopper", "collect@hopper-medium"):
        assert f"Stage '{skipped}' didn't change, skipping" in out, out
    for rerun in ("preprocess@medium", "train"):
        assert f"Running stage '{rerun}'" in out, out
    assert not (clone / "models/behavior/hopper").exists(), "the behaviour policy was regenerated"
    assert (clone / "models/train/agents/seed_0.pt").exists()
    with (
        h5py.File(clone / "data/transitions/medium.h5") as mine,
        h5py.File(source / "data/transitions/medium.h5") as theirs,
    ):
        assert mine.attrs["reward_scale"] == 2.0
        np.testing.assert_array_equal(mine["observations"][:], theirs["observations"][:])


def test_other_project_imports_datasets_and_trains(
    source: Path, s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data-registry pattern: a separate DVC project imports the datasets from this one."""
    project = tmp_path / "consumer"
    project.mkdir()
    sh(["git", "init", "-q"], project)
    sh(["dvc", "init", "-q"], project)
    sh(["dvc", "import", str(source), "data/datasets", "-o", "datasets"], project, env=s3.env())
    assert (project / "datasets.dvc").exists()
    assert (project / "datasets/hopper/medium-v0").is_dir()
    imported = file_hashes(project / "datasets", ["hopper"])
    # Every file of the folder but DVC's .gitignore files, which .dvcignore keeps out of DVC's view.
    exported = file_hashes(source / "data/datasets", ["hopper"])
    assert imported == {k: v for k, v in exported.items() if Path(k).name != ".gitignore"}
    one_file = "data/datasets/hopper/expert-v0/data/main_data.hdf5"
    sh(["dvc", "get", str(source), one_file, "-o", "expert.hdf5"], project, env=s3.env())
    assert (
        file_hashes(project, ["expert.hdf5"])["expert.hdf5"]
        == imported["hopper/expert-v0/data/main_data.hdf5"]
    )

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(project / "datasets"))
    assert minari.load_dataset("hopper/medium-v0").total_steps == 1500
    transitions = tmp_path / "train.h5"
    preprocess(
        [("hopper/medium-v0", project / "datasets/hopper/medium-v0")],
        transitions,
        PreprocessConfig(chunk_rows=1000),
    )
    data = load_transitions(transitions)
    torch.manual_seed(0)
    config = BCConfig(hidden=(64, 64)).with_default_lr(1e-3)
    bc = make_algorithm("bc", data.meta.obs_dim, data.meta.act_dim, config, torch.device("cpu"))
    buffer = ReplayBuffer.from_transitions(data, seeds=[0])
    probe = buffer.sample(4096)
    # The best constant guess of the action scores its variance; beating it by a margin means BC
    # learned a state-dependent policy from the imported data.
    constant_mse = float(((probe.actions - probe.actions.mean(1, keepdim=True)) ** 2).mean())
    for _ in range(1000):
        bc.update(buffer.sample(256))
    with torch.no_grad():
        trained_mse = float(F.mse_loss(bc.act(probe.observations), probe.actions))
    assert trained_mse < 0.85 * constant_mse, (trained_mse, constant_mse)


def test_credentials_stay_out_of_tracked_files(source: Path, s3: S3Server) -> None:
    """Credentials set as docs/remotes.md says land in .dvc/config.local only, and they work."""
    sh(["dvc", "remote", "modify", "--local", REMOTE, "access_key_id", s3.access_key_id], source)
    sh(
        ["dvc", "remote", "modify", "--local", REMOTE, "secret_access_key", s3.secret_access_key],
        source,
    )
    try:
        local_config = (source / ".dvc/config.local").read_text()
        assert s3.secret_access_key in local_config
        sh(["git", "check-ignore", "-q", ".dvc/config.local"], source)
        # No credentials in the environment: the push can only authenticate from config.local.
        no_keys = {k: v for k, v in s3.env().items() if not k.startswith("AWS_") or "FILE" in k}
        sh(["dvc", "push"], source, env=no_keys)

        listed = sh(["git", "ls-files", "-co", "--exclude-standard"], source).split()
        assert ".dvc/config" in listed and ".dvc/config.local" not in listed
        for name in listed:
            content = (source / name).read_bytes()
            for secret in (s3.access_key_id, s3.secret_access_key):
                assert secret.encode() not in content, f"{name} holds a credential"
    finally:
        sh(["dvc", "remote", "modify", "--local", "--unset", REMOTE, "access_key_id"], source)
        sh(["dvc", "remote", "modify", "--local", "--unset", REMOTE, "secret_access_key"], source)
