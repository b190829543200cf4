"""Where every stage's outputs live (dvc.yaml's outs, the same paths): one owner, so a stage that
reads another's output imports its path from here, not from that stage's entry.

`<ns>` is a namespace of `collect.envs` (Hopper-v5 -> hopper): behaviour training, reference
scores and collection run once per environment.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

# Generated Minari datasets: <root>/<ns>/<kind>-v0 (collect@<ns>-<kind>) beside
# <root>/<ns>/namespace_metadata.json (reference@<ns>); MINARI_DATASETS_PATH points here.
DATASETS_ROOT = Path("data/datasets")
SHARDS_ROOT = Path("data/shards")  # resume points of interrupted collections (git-ignored)
IMPORTED_ROOT = Path("data/imported")  # the download stage's out
IMPORTED_MANIFEST = IMPORTED_ROOT / "imported.json"
DOWNLOAD_METRICS = Path("metrics/download.json")
TRANSITIONS_ROOT = Path("data/transitions")

TRAIN_DIR = Path("models/train")
AGENTS = TRAIN_DIR / "agents"  # seed_<k>.pt per training seed
TRAIN_CHECKPOINT = TRAIN_DIR / "checkpoint.pt"  # the resume point (persisted, not cached)
TRAIN_PLOTS = Path("plots/train")
TRAIN_METRICS = Path("metrics/train.json")
PROFILE_METRICS = Path("metrics/profile.json")
TRACE = Path("profiles/train_trace.json")

VIDEO = Path("videos/evaluate.mp4")
EVALUATE_METRICS = Path("metrics/evaluate.json")

SNAPSHOT = Path("reports/experiments.json")  # the report stage's dep (committed: a clone has one)
REPORTS = Path("reports")  # the report stage's outs: results.md, results.csv, curves.png


def behavior_dir(namespace: str) -> Path:
    """behavior@<ns>'s checkpoints and replay buffer, read by reference and collect."""
    return Path("models/behavior") / namespace


def behavior_resume_path(namespace: str) -> Path:
    """behavior@<ns>'s resume state: a persisted DVC out outside the folder DVC deletes."""
    return Path("models/behavior_resume") / f"{namespace}.pt"


def behavior_curves(namespace: str) -> dict[str, Path]:
    """behavior@<ns>'s CSV curves, one folder per curve so the top-level `plots:` of dvc.yaml
    draws every environment's file from one entry (plots/behavior/eval/<ns>.csv, ...)."""
    root = Path("plots/behavior")
    return {
        "train": root / "episodes" / f"{namespace}.csv",
        "losses": root / "losses" / f"{namespace}.csv",
        "eval": root / "eval" / f"{namespace}.csv",
    }


def behavior_metrics_path(namespace: str) -> Path:
    return Path("metrics/behavior") / f"{namespace}.json"


def reference_path(namespace: str) -> Path:
    """The reference stage's scores for one environment of `collect.envs`."""
    return Path("metrics/reference") / f"{namespace}.json"


def collect_metrics_path(namespace: str, kind: str) -> Path:
    return Path("metrics/collect") / namespace / f"{kind}.json"


def transitions_path(name: str) -> Path:
    """The transitions file of a `preprocess.datasets` entry (train reads it)."""
    return TRANSITIONS_ROOT / f"{name}.h5"


def preprocess_metrics_path(name: str) -> Path:
    return Path("metrics/preprocess") / f"{name}.json"


def dvc_md5(path: Path, lock_file: Path = Path("dvc.lock")) -> str | None:
    """The md5 DVC records for the file `path`: read from dvc.lock when its size still matches,
    else computed (DVC 3 hashes a file's bytes with plain md5). None if the file is missing."""
    if not path.is_file():
        return None
    size = path.stat().st_size
    try:
        lock = yaml.safe_load(lock_file.read_text()) or {}
    except (OSError, yaml.YAMLError):
        lock = {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if out.get("path") == path.as_posix() and out.get("size") == size and out.get("md5"):
                return str(out["md5"])
    digest = hashlib.md5()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()
