"""The report's snapshot file (reports/experiments.json): the runs that analysis/experiments.py
gathered, as deterministic JSON, written only when its content changes, and read back for
rendering (analysis/report.py)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import atomic_path
from core.errors import PipelineError


class SnapshotError(PipelineError, ValueError):
    """reports/experiments.json is not a snapshot this code reads (regather it)."""


@dataclass(frozen=True)
class RunResult:
    name: str  # DVC experiment name or wandb run name
    algo: str
    dataset: str  # e.g. hopper/medium-v0
    seed: int  # the training seed (before train.seeds existed: the one top-level seed)
    final_score: float | None  # normalised score at the end (x100)
    best_score: float | None  # best normalised score seen during training
    curve: tuple[tuple[int, float], ...] = field(default=())  # (gradient step, normalised score)
    source: str = "dvc"  # "dvc" (an experiment or a commit) or "wandb"
    rev: str = ""  # the experiment's or commit's git sha; the wandb run id
    time: int = 0  # when it was made: commit time / run creation (seconds since the epoch)
    data_seed: int | None = None  # the top-level seed the data was generated with, when apart


SNAPSHOT_SCHEMA = 1


@dataclass(frozen=True)
class Snapshot:
    """What the report is rendered from; `runs` in priority order (the first of a key wins)."""

    runs: tuple[RunResult, ...] = ()
    sources: tuple[str, ...] = ("dvc",)
    include: str | None = None  # the name filter the runs were gathered with


def snapshot_text(snapshot: Snapshot) -> str:
    """Deterministic JSON, one run per line: the same runs always give the same bytes (nothing
    about when or where they were gathered), so rewriting an unchanged snapshot is a no-op for
    DVC, and a git diff shows the experiments that came or went."""
    runs = [
        json.dumps({**asdict(run), "curve": [list(p) for p in run.curve]}, sort_keys=True)
        for run in snapshot.runs
    ]
    head = {
        "schema": SNAPSHOT_SCHEMA,
        "sources": list(snapshot.sources),
        "include": snapshot.include,
    }
    fields = [f" {json.dumps(key)}: {json.dumps(value)}" for key, value in head.items()]
    body = ' "runs": [' + ("\n  " + ",\n  ".join(runs) + "\n ]" if runs else "]")
    return "{\n" + ",\n".join([*fields, body]) + "\n}\n"


def _run(data: dict[str, Any]) -> RunResult:
    curve = tuple((int(step), float(score)) for step, score in data.get("curve") or [])
    return RunResult(**{**data, "curve": curve})


def read_snapshot(path: Path) -> Snapshot:
    """The snapshot at `path`; a missing or empty file is a snapshot of no experiments."""
    text = path.read_text() if path.exists() else ""
    if not text.strip():
        return Snapshot()
    try:
        data = json.loads(text)
        if data.get("schema") != SNAPSHOT_SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r}, expected {SNAPSHOT_SCHEMA}")
        return Snapshot(
            runs=tuple(_run(run) for run in data["runs"]),
            sources=tuple(data["sources"]),
            include=data.get("include"),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise SnapshotError(
            f"{path}: not a results snapshot ({error}); regather it with `python -m pipelines.report gather`"
        ) from None


def write_if_changed(path: Path, text: str) -> bool:
    """Atomically replace `path` with `text` unless it already holds exactly that; True if written.

    An unchanged file keeps its bytes and mtime, so DVC sees nothing to rerun."""
    if path.exists() and path.read_text() == text:
        return False
    with atomic_path(path, suffix=path.suffix) as tmp:
        tmp.write_text(text)
    return True
