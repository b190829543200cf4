"""Stage `download` end to end: a D4RL file served on loopback becomes a Minari dataset that
preprocess (and then train/evaluate) takes like a generated one; failures are one clear line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import minari
import pytest
import yaml

from tests.datagen.d4rl_files import (
    D4RLEpisodes,
    ServedFile,
    closed_port,
    serve,
    sha256,
    write_d4rl_file,
)
from tests.pipelines.stage_runner import stage_env

REPO = Path(__file__).resolve().parents[2]
DATASET_ID = "d4rl/hopper/served-v0"


def run_stage(stage: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = stage_env(REPO)
    env.pop("OFFLINE_RL_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", f"pipelines.{stage}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def workdir(tmp_path: Path, entries: list[dict[str, Any]], attempts: int = 3) -> Path:
    """A folder with tiny params importing `entries`; preprocess takes the imported dataset."""
    params = yaml.safe_load((REPO / "tests/fixtures/tiny_params.yaml").read_text())
    params["download"].update(datasets=entries, attempts=attempts, backoff_s=0.01, timeout_s=5)
    params["preprocess"]["datasets"] = [DATASET_ID]
    params["train"]["dataset"] = DATASET_ID
    # the served file holds 36 rows, and train refuses a batch larger than its data
    params["train"]["batch_size"] = 16
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    return work


def assert_clean_failure(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def imported_files(work: Path) -> list[str]:
    root = work / "data" / "imported"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


@pytest.fixture
def d4rl_file(tmp_path: Path) -> Path:
    path = tmp_path / "hopper-served.hdf5"
    write_d4rl_file(path, D4RLEpisodes(), next_observations=True)
    return path


def test_served_file_is_imported_and_preprocessed(
    d4rl_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = D4RLEpisodes()
    with serve({"/hopper.hdf5": ServedFile(d4rl_file.read_bytes())}) as base:
        entry = {
            "source": "d4rl",
            "id": DATASET_ID,
            "url": f"{base}/hopper.hdf5",
            "sha256": sha256(d4rl_file),
        }
        work = workdir(tmp_path, [entry])
        result = run_stage("download", work)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((work / "metrics/download.json").read_text())["datasets"][DATASET_ID]
    assert (metrics["rows"], metrics["episodes"]) == (layout.rows, len(layout.lengths))
    manifest = json.loads((work / "data/imported/imported.json").read_text())
    assert manifest == {"datasets": [DATASET_ID]}
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(work / "data/imported"))
    dataset = minari.load_dataset(DATASET_ID)
    assert [len(e.rewards) for e in dataset.iterate_episodes()] == list(layout.lengths)

    result = run_stage("preprocess", work)
    assert result.returncode == 0, result.stderr
    with h5py.File(work / f"data/transitions/{DATASET_ID}.h5") as f:
        assert f["observations"].shape[0] == layout.rows
        assert int(f["terminals"][()].sum()) == layout.endings.count("terminal")
        assert json.loads(f.attrs["dataset_ids"]) == [DATASET_ID]
        assert f.attrs["env_id"] == "Hopper-v5"
        assert f.attrs["ref_score_source"] == "d4rl"


def test_wrong_sha256_fails_cleanly_and_leaves_nothing(d4rl_file: Path, tmp_path: Path) -> None:
    with serve({"/hopper.hdf5": ServedFile(d4rl_file.read_bytes())}) as base:
        entry = {
            "source": "d4rl",
            "id": DATASET_ID,
            "url": f"{base}/hopper.hdf5",
            "sha256": "ab" * 32,
        }
        work = workdir(tmp_path, [entry])
        result = run_stage("download", work)
    assert_clean_failure(result, f"{base}/hopper.hdf5", "check the sha256")
    assert imported_files(work) == []


def test_interrupted_download_leaves_nothing_and_a_retry_completes(
    d4rl_file: Path, tmp_path: Path
) -> None:
    served = ServedFile(d4rl_file.read_bytes(), drop_first=99)
    with serve({"/hopper.hdf5": served}) as base:
        entry = {"source": "d4rl", "id": DATASET_ID, "url": f"{base}/hopper.hdf5"}
        work = workdir(tmp_path, [entry], attempts=2)
        result = run_stage("download", work)
        assert_clean_failure(result, "failed after 2 attempts", "bytes")
        assert imported_files(work) == []

        served.drop_first = 1  # the connection drops once more, then the resume completes
        served.requests.clear()
        result = run_stage("download", work)
    assert result.returncode == 0, result.stderr
    assert served.requests[0] is None and str(served.requests[1]).startswith("bytes=")
    assert f"{DATASET_ID}/data/main_data.hdf5" in imported_files(work)


def test_unreachable_host_gives_one_clear_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/hopper.hdf5"
    work = workdir(tmp_path, [{"source": "d4rl", "id": DATASET_ID, "url": url}])
    result = run_stage("download", work)
    assert_clean_failure(result, url, "refused", "dvc pull")
    assert imported_files(work) == []


def test_bad_entry_names_the_key(tmp_path: Path) -> None:
    work = workdir(tmp_path, [{"source": "d4rl", "id": DATASET_ID, "url": "ftp://x/y.hdf5"}])
    result = run_stage("download", work)
    assert_clean_failure(result, "download.datasets.0.d4rl.url", "http://")


def test_dvc_repro_with_nothing_to_import(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    env = stage_env(repo)
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "t"],
        ["dvc", "repro", "download"],
    ):
        done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{cmd}: {done.stdout}\n{done.stderr}"
    assert json.loads((repo / "data/imported/imported.json").read_text()) == {"datasets": []}
    status = subprocess.run(
        ["dvc", "status", "download"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert "up to date" in status.stdout, status.stdout


@pytest.mark.slow
def test_imported_dataset_trains_and_evaluates(d4rl_file: Path, tmp_path: Path) -> None:
    work = workdir(tmp_path, [{"source": "d4rl", "id": DATASET_ID, "path": str(d4rl_file)}])
    for stage in ("download", "preprocess", "train", "evaluate"):
        result = run_stage(stage, work)
        assert result.returncode == 0, f"{stage}: {result.stderr}"
    evaluation = json.loads((work / "metrics/evaluate.json").read_text())
    assert "evaluate/normalized_score_mean" in evaluation
