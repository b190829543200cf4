"""Read a wandb run back from its local files, without the wandb server: what an offline run (or an
online run before it syncs) holds, for the tests of tracking (a test helper: users read runs with
`wandb sync` and the wandb SDK, docs/tracking.md).

wandb >= 0.19 keeps a run in `<run dir>/run-<id>.wandb`: a LevelDB-style log (32 KiB blocks,
7-byte record headers, records split FIRST/MIDDLE/LAST across blocks) of `Record` protobufs.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import PipelineError

BLOCK = 32 * 1024
HEADER = struct.Struct("<IHB")  # checksum, length, kind
FILE_MAGIC = b":W&B"
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


class WandbFileError(PipelineError, ValueError):
    """The file is not a wandb run log; the message names it."""


@dataclass
class LocalRun:
    run_id: str
    job_type: str
    group: str
    name: str
    tags: list[str]
    config: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)  # one dict per logged step
    summary: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # paths under the run's files/ folder
    exit_code: int | None = None  # None: the run has not finished (or is still being written)

    def series(self, key: str) -> list[tuple[int, float]]:
        """(step, value) for every history row holding `key`."""
        return [(int(row["_step"]), row[key]) for row in self.history if key in row]


def raw_records(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if data[:4] != FILE_MAGIC:
        raise WandbFileError(f"{path}: not a wandb run log (header {data[:4]!r})")
    records: list[bytes] = []
    pending = b""
    pos = 7  # file header: magic, version
    while pos + HEADER.size <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER.size:  # block tail too short for a header is zero padding
            pos += left
            continue
        _, length, kind = HEADER.unpack_from(data, pos)
        pos += HEADER.size
        if kind == 0:  # zero fill to the end of the block
            pos += (BLOCK - pos % BLOCK) % BLOCK
            continue
        chunk = data[pos : pos + length]
        pos += length
        if kind == FULL:
            records.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            records.append(pending + chunk)
            pending = b""
    return records


def _key(item: Any) -> str:
    return str(item.key) if item.key else "/".join(item.nested_key)


def read_run(run_dir: Path) -> LocalRun:
    """The run in `run_dir` (e.g. wandb/offline-run-<time>-<id>)."""
    from wandb.proto import wandb_internal_pb2 as pb

    logs = sorted(run_dir.glob("run-*.wandb"))
    if not logs:
        raise WandbFileError(f"{run_dir}: no run-*.wandb log in this folder")
    run: LocalRun | None = None
    for data in raw_records(logs[0]):
        record = pb.Record()  # type: ignore[attr-defined]
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            config = {u.key: json.loads(u.value_json) for u in r.config.update}
            run = LocalRun(r.run_id, r.job_type, r.run_group, r.display_name, list(r.tags), config)
        elif run is None:
            continue
        elif kind == "config":
            run.config |= {_key(u): json.loads(u.value_json) for u in record.config.update}
        elif kind == "history":
            run.history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            run.summary |= {_key(u): json.loads(u.value_json) for u in record.summary.update}
        elif kind == "files":
            run.files += [f.path for f in record.files.files]
        elif kind == "exit":
            run.exit_code = int(record.exit.exit_code)
    if run is None:
        raise WandbFileError(f"{logs[0]}: no run record")
    return run


def local_runs(wandb_dir: Path) -> list[LocalRun]:
    """Every run under `wandb_dir` (the folder holding offline-run-* / run-* folders), oldest first."""
    dirs = sorted(wandb_dir.glob("offline-run-*")) + sorted(wandb_dir.glob("run-*"))
    return [read_run(d) for d in sorted(dirs, key=lambda d: d.name.split("-", 2)[-1])]
