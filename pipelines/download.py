"""Stage `download`: import the datasets listed in params.yaml's download section.

Imported datasets live under data/imported/<id> (their own DVC out: the generated ones are
data/datasets); `preprocess.datasets` names them by id. An empty list still creates the folder,
with a manifest, so the stage has an output for DVC to track.
"""

from __future__ import annotations

import logging

from core.atomic import write_json
from datagen.sources.config import DownloadConfig
from datagen.sources.importer import import_entry
from pipelines.params import global_params, load_params, section
from pipelines.paths import DOWNLOAD_METRICS, IMPORTED_MANIFEST, IMPORTED_ROOT
from pipelines.stage import progress_enabled, run_stage

log = logging.getLogger("pipelines.download")


def main() -> None:
    params = load_params()
    g = global_params(params)
    config = section(params, DownloadConfig)
    IMPORTED_ROOT.mkdir(parents=True, exist_ok=True)
    imported = {}
    for entry in config.datasets:
        log.info("importing %s", entry.model_dump(exclude_none=True))
        dataset_id, summary = import_entry(
            entry, IMPORTED_ROOT, config, g.env, progress=progress_enabled()
        )
        imported[dataset_id] = summary
    write_json(IMPORTED_MANIFEST, {"datasets": sorted(imported)})
    write_json(DOWNLOAD_METRICS, {"datasets": imported})


if __name__ == "__main__":
    run_stage(main)
