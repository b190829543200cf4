"""Dataset sources: Minari remotes, through a stand-in remote on the local disk."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest
from minari.storage import remotes
from minari.storage.remotes.cloud_storage import CloudStorage

from datagen.sources.config import DownloadConfig, MinariSource
from datagen.sources.errors import SourceError
from datagen.sources.importer import import_entry
from datagen.sources.minari_remote import fetch_minari
from tests.conftest import make_random_dataset
from tests.datagen.test_sources import ENV_ID, load


class FolderRemote(CloudStorage):  # type: ignore[misc]
    """A stand-in for a Minari remote: `file://<bucket>` is the folder `<base>/<bucket>`, laid
    out like the bucket Minari reads (Minari takes only one path component as the bucket name)."""

    base = Path("/nonexistent")

    def __init__(self, name: str, token: str | None = None) -> None:
        self.root = self.base / name

    def list_datasets(self, prefix: str | None = None) -> Iterable[str]:
        for meta in self.root.glob("**/data/metadata.json"):
            dataset_id = meta.parent.parent.relative_to(self.root).as_posix()
            if dataset_id.startswith(prefix or ""):
                yield dataset_id

    def get_dataset_metadata(self, dataset_id: str) -> dict[str, object]:
        return dict(json.loads((self.root / dataset_id / "data" / "metadata.json").read_text()))

    def download_dataset(self, dataset_id: str, path: Path) -> None:
        shutil.copytree(self.root / dataset_id, path / dataset_id)

    def list_namespaces(self) -> Iterable[str]:
        for meta in self.root.glob("**/namespace_metadata.json"):
            yield meta.parent.relative_to(self.root).as_posix()

    def download_namespace_metadata(self, namespace: str, path: Path) -> None:
        shutil.copy(self.root / namespace / "namespace_metadata.json", path / namespace)

    def upload_dataset(self, dataset_id: str) -> None:
        raise NotImplementedError

    def upload_namespace(self, namespace: str) -> None:
        raise NotImplementedError


@pytest.fixture
def folder_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Register the stand-in as Minari's `file://` remote holding `mujoco/hopper/tiny-v0`."""
    bucket = tmp_path / "bucket"
    make_random_dataset(bucket, "mujoco/hopper/tiny-v0", steps=200, num_envs=2)
    (bucket / "mujoco" / "namespace_metadata.json").write_text('{"namespace": "mujoco"}')
    monkeypatch.setattr(FolderRemote, "base", tmp_path)
    monkeypatch.setitem(remotes._registry, "file", lambda: FolderRemote)
    return "file://bucket"


def test_minari_remote_downloads_through_minari(
    folder_remote: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = MinariSource(source="minari", id="mujoco/hopper/tiny-v0", remote=folder_remote)
    dataset_id, _ = import_entry(entry, tmp_path / "root", DownloadConfig(), ENV_ID)
    assert load(tmp_path / "root", dataset_id, monkeypatch).total_steps == 200
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["mujoco"]


def test_minari_remote_unknown_id_is_one_line(folder_remote: str, tmp_path: Path) -> None:
    with pytest.raises(SourceError) as error:
        fetch_minari("mujoco/hopper/missing-v0", tmp_path / "root", folder_remote)
    message = str(error.value)
    assert "\n" not in message and "'mujoco/hopper/missing-v0'" in message
    assert "Couldn't find any version" in message and "dvc pull" in message
    assert not (tmp_path / "root" / "mujoco" / "hopper" / "missing-v0").exists()


def test_minari_remote_failing_client_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Offline(FolderRemote):
        def list_datasets(self, prefix: str | None = None) -> Iterable[str]:
            raise ConnectionError("[Errno 101] Network is unreachable")

    monkeypatch.setitem(remotes._registry, "offline", lambda: Offline)
    with pytest.raises(
        SourceError, match=r"from offline://x: ConnectionError: .*unreachable; check"
    ):
        fetch_minari("mujoco/hopper/medium-v0", tmp_path / "root", "offline://x")


def test_minari_remote_without_storage_client_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing() -> type[CloudStorage]:
        raise ImportError("huggingface_hub is not installed")

    monkeypatch.setitem(remotes._registry, "hf", missing)
    with pytest.raises(SourceError, match=r"not installed.*install minari\[hf\]"):
        fetch_minari("mujoco/hopper/medium-v0", tmp_path / "root", "hf://farama-minari")
