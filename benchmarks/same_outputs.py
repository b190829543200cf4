"""Do two revisions make the same pipeline outputs? `dvc repro` on the tiny params at each, then
every array and tensor compared by name.

    python -m benchmarks.same_outputs --before 40b0afe --after HEAD

Made for restructurings that promise no change of behaviour: each revision is exported
(`git archive`) into a fresh repository of its own with its own tests/fixtures/tiny_params.yaml as
params.yaml, the whole pipeline runs there with this interpreter, and then every HDF5 dataset
(Minari files, transitions files), every tensor in every .pt file (behaviour checkpoints, agents,
resume states) and every number in the metrics is compared exactly. Wall times, dates and file
identities are expected to differ and are listed apart. Results go to
benchmarks/results/same_outputs.json; the exit status is 1 if any array, tensor or metric differs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks/results/same_outputs.json"
OUTPUT_FOLDERS = ("data", "models", "metrics")
# Values that measure or name the run, not what it computed: timings and their shares of the
# step, dates, the commit the files link to, wandb run ids.
VOLATILE_WORDS = ("time", "seconds", "per_s", "fraction", "date", "wall", "permalink", "wandb_run")


def export(rev: str, dest: Path) -> Path:
    """The tree of `rev` as a repository of its own, its tiny params as params.yaml, committed."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x"], cwd=dest, input=archive.stdout, check=True)
    shutil.copy(dest / "tests/fixtures/tiny_params.yaml", dest / "params.yaml")
    for command in (["git", "init", "-q"], ["git", "add", "-A"]):
        subprocess.run(command, cwd=dest, check=True)
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", rev],
        cwd=dest,
        check=True,
    )
    return dest


def repro(repo: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONPATH": str(repo),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
    }
    subprocess.run(["dvc", "repro"], cwd=repo, env=env, check=True)


def is_volatile(name: str) -> bool:
    last = name.lower().rsplit("/", 1)[-1]
    return last.endswith("_s") or any(word in name.lower() for word in VOLATILE_WORDS)


def hdf5_items(path: Path) -> Iterator[tuple[str, Any]]:
    with h5py.File(path, "r") as f:
        found: list[tuple[str, Any]] = []

        def visit(name: str, node: Any) -> None:
            if isinstance(node, h5py.Dataset):
                found.append((name, node[()]))
            found.extend((f"{name}@{key}", value) for key, value in node.attrs.items())

        f.visititems(visit)
        found.extend((f"@{key}", value) for key, value in f.attrs.items())
    yield from found


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, f"{prefix}/{key}" if prefix else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from flatten(item, f"{prefix}[{index}]")
    else:
        yield prefix, value


def file_items(path: Path) -> Iterator[tuple[str, Any]]:
    if path.suffix in (".h5", ".hdf5"):
        yield from hdf5_items(path)
    elif path.suffix == ".pt":
        yield from flatten(torch.load(path, map_location="cpu", weights_only=False))
    elif path.suffix == ".json":
        yield from flatten(json.loads(path.read_text()))
    else:
        yield "bytes", path.read_bytes()


def same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b))
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    try:
        return bool(a == b)
    except (RuntimeError, ValueError):
        return False


def compare(before: Path, after: Path) -> dict[str, Any]:
    def files(root: Path) -> set[str]:
        return {
            p.relative_to(root).as_posix()
            for folder in OUTPUT_FOLDERS
            for p in (root / folder).rglob("*")
            if p.is_file() and p.name != ".gitignore"
        }

    names_before, names_after = files(before), files(after)
    result: dict[str, Any] = {
        "only_before": sorted(names_before - names_after),
        "only_after": sorted(names_after - names_before),
        "files": 0,
        "values_equal": 0,
        "differ": [],
        "volatile_differ": [],
    }
    for name in sorted(names_before & names_after):
        result["files"] += 1
        items_before = dict(file_items(before / name))
        items_after = dict(file_items(after / name))
        for key in sorted(set(items_before) | set(items_after)):
            where = f"{name}:{key}"
            if key not in items_before or key not in items_after:
                result["differ"].append(
                    f"{where} (only {'after' if key in items_after else 'before'})"
                )
            elif same(items_before[key], items_after[key]):
                result["values_equal"] += 1
            else:
                volatile = is_volatile(key) or (name.endswith(".json") and is_volatile(name))
                result["volatile_differ" if volatile else "differ"].append(where)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="git revision")
    parser.add_argument("--after", default="HEAD", help="git revision")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    parser.add_argument(
        "--compare-only", action="store_true", help="compare what an earlier --keep run left"
    )
    args = parser.parse_args()
    if args.compare_only and args.keep is None:
        parser.error("--compare-only needs --keep, the folder of the earlier run")
    work = args.keep or Path(tempfile.mkdtemp(prefix="same-outputs-"))
    try:
        repos = {side: work / side for side in ("before", "after")}
        for side, repo in repos.items():
            if not args.compare_only:
                export(getattr(args, side), repo)
                repro(repo)
        result = compare(repos["before"], repos["after"])
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    result = {"before": args.before, "after": args.after, **result}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v if not isinstance(v, list) else len(v) for k, v in result.items()}))
    for where in result["differ"][:50]:
        print("differs:", where)
    sys.exit(1 if result["differ"] or result["only_before"] or result["only_after"] else 0)


if __name__ == "__main__":
    main()
