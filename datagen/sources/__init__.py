"""Where a dataset comes from when it is imported rather than generated.

Three kinds of entry, chosen by `source`:
- `minari`: a Minari remote id, fetched with Minari's download API;
- `d4rl`: a D4RL-format HDF5 file by local path or http(s) url, converted to a Minari dataset;
- `folder`: an existing Minari dataset folder, validated and copied (or linked).
Each lands at `<root>/<dataset id>`, a folder `minari.load_dataset` reads with
MINARI_DATASETS_PATH=<root> and `preprocess` takes like a generated dataset.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from core.config import StrictModel
from datagen.sources.d4rl import import_d4rl
from datagen.sources.errors import SourceError
from datagen.sources.http import RetryPolicy, download
from datagen.sources.minari_folder import import_folder, read_metadata
from datagen.sources.minari_remote import fetch_minari

__all__ = [
    "D4RLSource",
    "DownloadConfig",
    "FolderSource",
    "MinariSource",
    "SourceError",
    "import_entry",
]

# Minari's namespace/name-vN with the namespace required: preprocess.datasets tells an imported id
# from a generated kind ("medium") by its "/".
DATASET_ID = r"^[-\w]+(?:/[-\w]+)+-v\d+$"


def _dataset_id(value: str) -> str:
    if not re.match(DATASET_ID, value):
        raise ValueError(
            "must look like namespace/name-vN, e.g. mujoco/hopper/medium-v0 (the namespace is what "
            "tells preprocess.datasets an imported id from a generated kind)"
        )
    return value


DatasetId = Annotated[str, AfterValidator(_dataset_id)]


class MinariSource(StrictModel):
    source: Literal["minari"]
    id: DatasetId  # e.g. mujoco/hopper/medium-v0
    remote: str | None = None  # e.g. hf://farama-minari; None is Minari's default


class D4RLSource(StrictModel):
    source: Literal["d4rl"]
    id: DatasetId  # the id it gets here, e.g. d4rl/hopper/medium-v2
    url: str | None = None  # http(s)://...
    path: str | None = None  # a local file
    sha256: str | None = None  # of the file, as `sha256sum FILE` prints it
    env: str | None = None  # gymnasium id whose spaces the file uses; None: the top-level env

    @field_validator("sha256")
    @classmethod
    def _hex(cls, digest: str | None) -> str | None:
        if digest is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            raise ValueError("must be 64 hexadecimal digits, as `sha256sum FILE` prints them")
        return digest

    @field_validator("url")
    @classmethod
    def _http(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^https?://", url):
            raise ValueError("must start with http:// or https:// (use path for a local file)")
        return url

    @model_validator(mode="after")
    def _one_location(self) -> D4RLSource:
        if (self.url is None) == (self.path is None):
            raise ValueError("give exactly one of url and path")
        return self


class FolderSource(StrictModel):
    source: Literal["folder"]
    path: str  # a Minari dataset folder (the one holding data/metadata.json)
    id: DatasetId | None = None  # None: the id in its metadata
    link: bool = False  # symlink instead of copying (the folder must outlive the pipeline)


Entry = Annotated[MinariSource | D4RLSource | FolderSource, Field(discriminator="source")]


class DownloadConfig(StrictModel):
    datasets: tuple[Entry, ...] = ()
    attempts: int = Field(default=5, ge=1, le=20)
    backoff_s: float = Field(default=1.0, ge=0)
    timeout_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _unique_ids(self) -> DownloadConfig:
        ids = [e.id for e in self.datasets if e.id is not None]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"dataset ids must be unique, repeated: {repeated}")
        return self

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(self.attempts, self.backoff_s, self.timeout_s)


def import_entry(
    entry: MinariSource | D4RLSource | FolderSource,
    root: Path,
    config: DownloadConfig,
    default_env: str,
    progress: bool = False,
) -> tuple[str, dict[str, Any]]:
    """Bring one entry into `root`; returns its dataset id and a summary for the metrics."""
    dataset_id, summary = _import(entry, root, config, default_env, progress)
    metadata = read_metadata(root / dataset_id)
    summary.update(
        episodes=metadata.get("total_episodes"),
        steps=metadata.get("total_steps"),
        ref_min_score=metadata.get("ref_min_score"),
        ref_max_score=metadata.get("ref_max_score"),
    )
    return dataset_id, summary


def _import(
    entry: MinariSource | D4RLSource | FolderSource,
    root: Path,
    config: DownloadConfig,
    default_env: str,
    progress: bool,
) -> tuple[str, dict[str, Any]]:
    if isinstance(entry, MinariSource):
        fetch_minari(entry.id, root, entry.remote)
        return entry.id, {"source": "minari", "remote": entry.remote}
    if isinstance(entry, FolderSource):
        folder = Path(entry.path)
        dataset_id = entry.id or str(read_metadata(folder).get("dataset_id", ""))
        if not re.match(DATASET_ID, dataset_id):
            raise SourceError(f"{folder}: dataset id {dataset_id!r} unusable; set the entry's id")
        import_folder(folder, root, dataset_id, entry.link)
        return dataset_id, {"source": "folder", "path": str(folder)}
    env_id = entry.env or default_env
    if entry.path is not None:
        summary = import_d4rl(Path(entry.path), root, entry.id, env_id, entry.sha256)
        return entry.id, {"source": "d4rl", "path": entry.path, **summary}
    assert entry.url is not None
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download.", dir=root) as staging:
        local = download(
            entry.url, Path(staging) / "d4rl.hdf5", entry.sha256, config.retry, progress
        )
        summary = import_d4rl(local, root, entry.id, env_id, sha256=None, origin=entry.url)
    return entry.id, {"source": "d4rl", "url": entry.url, **summary}
