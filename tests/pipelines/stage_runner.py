"""Run stage entries and DVC as a user would: in another directory, as a separate process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def stage_env(code: Path) -> dict[str, str]:
    """Environment for a stage process running the code at `code` (a repository checkout)."""
    return {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "PYTHONPATH": str(code),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "DVC_NO_ANALYTICS": "1",
    }


def sh(cmd: list[str], cwd: Path, code: Path | None = None) -> str:
    """Run `cmd` in `cwd` and return its output; fail the test with the output if it fails."""
    result = subprocess.run(
        cmd,
        cwd=cwd,
        env=stage_env(code or cwd),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
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


def copy_repo(dest: Path) -> Path:
    """The tracked and untracked-but-not-ignored files of this checkout, committed in a new git
    repository at `dest`, with the tiny params as params.yaml."""
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
    shutil.copy(REPO / "tests/fixtures/tiny_params.yaml", dest / "params.yaml")
    sh(["git", "init", "-q"], dest)
    sh(["git", "add", "-A"], dest)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], dest)
    return dest
