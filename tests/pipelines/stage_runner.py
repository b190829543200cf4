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


def copy_repo(dest: Path, params: Path = TINY_PARAMS) -> Path:
    """The tracked and untracked-but-not-ignored files of this checkout, committed in a new git
    repository at `dest`, with `params` (default: the tiny params) as params.yaml."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
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
