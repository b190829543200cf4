"""Bringing one `download.datasets` entry into the imported datasets' folder, by its kind:
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
from typing import Any

from datagen.sources.config import (
    DATASET_ID,
    D4RLSource,
    DownloadConfig,
    FolderSource,
    MinariSource,
)
from datagen.sources.d4rl import import_d4rl
from datagen.sources.errors import SourceError
from datagen.sources.http import RetryPolicy, download
from datagen.sources.minari_folder import import_folder, read_metadata
from datagen.sources.minari_remote import fetch_minari


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
            entry.url, Path(staging) / "d4rl.hdf5", entry.sha256, retry_policy(config), progress
        )
        summary = import_d4rl(local, root, entry.id, env_id, sha256=None, origin=entry.url)
    return entry.id, {"source": "d4rl", "url": entry.url, **summary}


def retry_policy(config: DownloadConfig) -> RetryPolicy:
    return RetryPolicy(config.attempts, config.backoff_s, config.timeout_s)
