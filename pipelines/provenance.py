"""Where the code that made an output comes from: the git commit, recorded in wandb runs' config and
in every generated dataset's metadata."""

from __future__ import annotations

import subprocess


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def code_permalink() -> str:
    remote = subprocess.run(
        ["git", "config", "--get", "remote.origin.url"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return f"{remote or 'local'}@{git_commit()}"
