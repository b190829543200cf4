"""Run stage entries and DVC as a user would: in another directory, as a separate process.

Pipeline tests run `dvc repro` on tests/fixtures/tiny_params.yaml in a throwaway copy of this
repository (its own git repo), so they never touch the working tree's outputs, cache or remotes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TINY_PARAMS = REPO / "tests/fixtures/tiny_params.yaml"


def stage_env(code: Path) -> dict[str, str]:
    """Environment for a stage process running the code at `code` (a repository checkout)."""
    return {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "PYTHONPATH": str(code),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
    }


def sh(
    cmd: list[str],
    cwd: Path,
    code: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 900,
) -> str:
    """Run `cmd` in `cwd` and return its output; fail the test with the output if it fails."""
    result = subprocess.run(
        cmd,
        cwd=cwd,
        env={**stage_env(code or cwd), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"{' '.join(cmd)} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout + result.stderr


def start_stage(stage: str, cwd: Path) -> subprocess.Popen[str]:
    """Start `python -m pipelines.<stage>` in `cwd` (which holds params.yaml and the inputs),
    running this checkout's code."""
    return subprocess.Popen(
        [sys.executable, "-m", f"pipelines.{stage}"],
        cwd=cwd,
        env={**stage_env(REPO), "WANDB_MODE": "disabled"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def git_commit_all(repo: Path, message: str) -> None:
    sh(["git", "add", "-A"], repo)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], repo)


def pipeline_products(source: Path) -> set[str]:
    """Paths in `source`'s workspace that running the pipeline writes, not a developer: dvc.lock,
    every output of its dvc.yaml (files or folders; metrics, plots and uncached outs included)
    with the .gitignore DVC keeps beside each, and the report snapshot `make report` gathers."""
    from dvc.repo import Repo  # type: ignore[import-untyped]  # DVC is slow to import

    from pipelines.paths import SNAPSHOT

    products = {"dvc.lock", SNAPSHOT.as_posix()}
    with Repo(str(source)) as repo:
        for out in repo.index.outs:
            path = Path(out.fs_path).relative_to(source.resolve())
            products.add(path.as_posix())
            if path.parent != Path("."):  # the top-level one is the developer's as much as DVC's
                products.add((path.parent / ".gitignore").as_posix())
    return products


def _git_files(source: Path, *args: str) -> list[str]:
    out = subprocess.run(
        ["git", *args], cwd=source, capture_output=True, check=True
    ).stdout.decode()
    return [name for name in out.split("\0") if name]


def copy_repo(dest: Path, params: Path = TINY_PARAMS, source: Path = REPO) -> Path:
    """A new git repository at `dest` holding `source` as a fresh clone of it would, with this
    checkout's code: `params` (default: the tiny params) as params.yaml, committed.

    Files git sees (tracked, or untracked and not ignored) come from the working tree, so tests
    run uncommitted code; but whatever the pipeline writes (`pipeline_products`: a `make repro`
    or `dvc exp run` in this clone leaves a modified dvc.lock, metrics, plots and reports) comes
    from HEAD, or is left out when HEAD has none: a stage must run in the copy because its
    inputs say so, never be skipped because this workspace already ran it.
    """
    source = source.resolve()
    at_head = set(_git_files(source, "ls-tree", "-r", "-z", "--name-only", "HEAD"))
    visible = set(_git_files(source, "ls-files", "-z", "-co", "--exclude-standard"))
    products = pipeline_products(source)

    def is_product(name: str) -> bool:
        return any(name == p or name.startswith(f"{p}/") for p in products)

    for name in sorted(at_head | visible):
        target = dest / name
        if is_product(name):
            if name not in at_head:
                continue
            content = subprocess.run(
                ["git", "show", f"HEAD:{name}"], cwd=source, capture_output=True, check=True
            ).stdout
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        elif (source / name).is_file() and name in visible:  # deleted in the working tree: gone
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target)
    shutil.copy(params, dest / "params.yaml")
    sh(["git", "init", "-q"], dest)
    git_commit_all(dest, "tiny")
    return dest


def file_hashes(root: Path, paths: list[str]) -> dict[str, str]:
    """sha256 of every file under each of `paths` (files or folders), keyed by path from `root`."""
    hashes: dict[str, str] = {}
    for name in paths:
        top = root / name
        files = sorted(p for p in top.rglob("*") if p.is_file()) if top.is_dir() else [top]
        for path in files:
            hashes[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def copy_repo_with_changes(root: Path, changes: Mapping[str, Any]) -> Path:
    """`copy_repo` at `root/repo` with the tiny params, each dotted key of `changes` set
    (params_edit.with_changes), as its params.yaml."""
    from tests.pipelines.params_edit import with_changes

    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(with_changes(dict(changes)), sort_keys=False))
    (root / "repo").mkdir()
    return copy_repo(root / "repo", params)
