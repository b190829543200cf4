"""Write episodes into a Minari dataset (HDF5 backend) through Minari's storage API.

Episodes are appended in chunks, so memory is bounded by the chunk, not the dataset. The dataset is
built in a temporary sibling folder and renamed into `<root>/<namespace>/<name>-v<k>` only when
complete: a killed writer never leaves a dataset that `minari.load_dataset` would half-read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import minari
import numpy as np
from minari.data_collector import EpisodeBuffer
from minari.dataset.minari_storage import MinariStorage

from core.atomic import atomic_dir, remove_stale_siblings, write_json
from core.envs import make_env
from datagen.collection.reference import ReferenceScores
from datagen.collection.rollouts import Episode

NAMESPACE_METADATA = "namespace_metadata.json"


@dataclass(frozen=True)
class DatasetInfo:
    """Descriptive metadata Minari shows for a dataset, and our provenance fields."""

    dataset_id: str
    env_id: str
    algorithm_name: str
    description: str
    code_permalink: str
    author: str = "offline-rl-pipeline"
    author_email: str = "offline-rl-pipeline@users.noreply.github.com"
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class WriteSummary:
    episodes: int = 0
    steps: int = 0
    returns: list[float] = field(default_factory=list)

    def stats(self) -> dict[str, float]:
        r = np.asarray(self.returns) if self.returns else np.zeros(1)
        return {
            "return_mean": float(r.mean()),
            "return_std": float(r.std()),
            "return_min": float(r.min()),
            "return_max": float(r.max()),
        }


def dataset_dir(root: Path, dataset_id: str) -> Path:
    return Path(root) / dataset_id


def _buffer(episode: Episode, index: int) -> EpisodeBuffer:
    arrays = episode.arrays()
    return EpisodeBuffer(
        id=index,
        seed=episode.seed if episode.seed is not None and episode.seed >= 0 else None,
        observations=arrays["observations"],
        actions=arrays["actions"],
        rewards=list(arrays["rewards"]),
        terminations=list(arrays["terminations"]),
        truncations=list(arrays["truncations"]),
        infos={},
    )


def write_dataset(
    root: Path,
    info: DatasetInfo,
    episodes: Iterable[Episode],
    reference: ReferenceScores | None,
    chunk_episodes: int = 64,
    namespace_metadata: bool = True,
) -> WriteSummary:
    """Stream `episodes` into a new Minari dataset under `root`, replacing any previous version.

    `reference` None (an environment nobody scored) leaves the reference scores null.
    `namespace_metadata` False writes nothing outside the dataset's own folder: the collect stage's
    DVC output is that folder, and the namespace's file belongs to the reference stage.
    """
    target = dataset_dir(Path(root).resolve(), info.dataset_id)  # Minari needs absolute paths
    remove_stale_siblings(target)
    env = make_env(info.env_id)
    summary = WriteSummary()
    with atomic_dir(target) as tmp:
        data_path = tmp / "data"
        storage = MinariStorage.new(
            data_path,
            observation_space=env.observation_space,
            action_space=env.action_space,
            env_spec=env.spec,
            data_format="hdf5",
        )
        chunk: list[EpisodeBuffer] = []
        for episode in episodes:
            chunk.append(_buffer(episode, summary.episodes))
            summary.episodes += 1
            summary.steps += len(episode)
            summary.returns.append(episode.total_return)
            if len(chunk) >= chunk_episodes:
                storage.update_episodes(chunk)
                chunk = []
        if chunk:
            storage.update_episodes(chunk)
        storage.update_metadata(
            {
                "dataset_id": info.dataset_id,
                "algorithm_name": info.algorithm_name,
                "code_permalink": info.code_permalink,
                "author": {info.author},
                "author_email": {info.author_email},
                "description": info.description,
                "minari_version": minari.__version__,
                "ref_min_score": None if reference is None else reference.min_score,
                "ref_max_score": None if reference is None else reference.max_score,
                "ref_score_source": None if reference is None else reference.source,
                "num_episodes_average_score": 0,
                "return_stats": summary.stats(),
                "provenance": info.provenance,
            }
        )
    env.close()
    if namespace_metadata:
        ensure_namespace(root, info.dataset_id)
    return summary


def namespace_metadata_path(root: Path, namespace: str) -> Path:
    """Where Minari looks for a namespace's metadata (`minari.namespace.list_local_namespaces`)."""
    return Path(root) / namespace / NAMESPACE_METADATA


def ensure_namespace(root: Path, dataset_id: str) -> None:
    """Minari lists namespaces by a small JSON file in each namespace folder."""
    namespace = dataset_id.rsplit("/", 1)[0] if "/" in dataset_id else None
    if namespace is None:
        return
    path = namespace_metadata_path(root, namespace)
    if not path.exists():
        write_json(path, {"namespace": namespace})
