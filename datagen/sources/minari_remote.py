"""Minari remote ids (e.g. `mujoco/hopper/medium-v0`) fetched with Minari's own download API.

`minari.download_dataset` writes under the folder named by MINARI_DATASETS_PATH; it is pointed at a
staging folder beside the import root for the call, so the dataset reaches `root/<id>` only after
it downloaded whole and validated (a rename, never a half-written folder). Any failure inside Minari
or its storage client (offline, unknown id, missing `minari[hf]` extra) becomes one SourceError.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import minari

from core.atomic import atomic_dir, remove_stale_siblings
from datagen.sources.errors import SourceError
from datagen.sources.minari_folder import validate


@contextlib.contextmanager
def _minari_settings(datasets_path: Path, remote: str | None) -> Iterator[None]:
    """Minari reads its datasets folder and remote from these variables only; set them for the call.

    The remote too: `download_dataset` fetches namespace metadata from MINARI_REMOTE even when the
    id names another remote.
    """
    settings = {"MINARI_DATASETS_PATH": str(datasets_path)}
    if remote is not None:
        settings["MINARI_REMOTE"] = remote
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def remote_id(dataset_id: str, remote: str | None) -> str:
    """Minari's spelling of "this id on that remote": `hf://farama-minari/mujoco/hopper/...`."""
    return f"{remote.rstrip('/')}/{dataset_id}" if remote else dataset_id


def fetch_minari(dataset_id: str, root: Path, remote: str | None = None) -> Path:
    """Download `dataset_id` from `remote` (Minari's default when None) into `root/dataset_id`."""
    where = remote or "Minari's default remote"
    target = root / dataset_id
    remove_stale_siblings(target)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".minari-staging.", dir=root) as staging:
        try:
            with _minari_settings(Path(staging), remote), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Minari warns through the same path it fails by
                minari.download_dataset(remote_id(dataset_id, remote), force_download=True)
        except ImportError as error:
            raise SourceError(
                f"minari remote {dataset_id!r}: Minari's storage client is not installed "
                f"({error}); install minari[hf] (or minari[gcs] for gcp:// remotes), or copy the "
                "dataset folder and import it with source: folder"
            ) from None
        except Exception as error:  # the storage clients raise their own exception families
            raise SourceError(
                f"minari remote {dataset_id!r} from {where}: {type(error).__name__}: "
                f"{' '.join(str(error).split())}; "
                "check the id (minari list remote), the remote and your network, or fetch the "
                "imported data with `dvc pull`"
            ) from None
        downloaded = Path(staging) / dataset_id
        validate(downloaded)
        with atomic_dir(target) as tmp:
            os.rmdir(tmp)
            shutil.move(downloaded, tmp)
    return target
