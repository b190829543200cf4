"""d3rlpy's own virtual environment, created on first use.

d3rlpy 2.8.1 pins gymnasium==1.0.0 while the project uses gymnasium 1.4, so d3rlpy cannot live in
the project venv. Both benchmarks run d3rlpy in `benchmarks/.venv-d3rlpy` as a subprocess; torch is
pinned to the project's version so both sides run the same kernels.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import venv
from pathlib import Path

VENV_DIR = Path(__file__).resolve().parent / ".venv-d3rlpy"
# mujoco and imageio: gymnasium 1.0.0 imports both for Hopper-v5 but d3rlpy does not require them.
PACKAGES = ("torch==2.13.0", "d3rlpy==2.8.1", "mujoco==4.0.0", "imageio==2.38.1")


class D3rlpyEnvError(RuntimeError):
    """The d3rlpy venv could not be created (no package index, incompatible wheels)."""


def python_path(venv_dir: Path = VENV_DIR) -> Path:
    return venv_dir / "bin" / "python"


def ensure_d3rlpy_env(venv_dir: Path = VENV_DIR, quiet: bool = True) -> Path:
    """The venv's python, creating the venv and installing d3rlpy if that was not done yet."""
    stamp = venv_dir / ".installed"
    wanted = "\n".join(PACKAGES)
    if stamp.exists() and stamp.read_text() == wanted:
        return python_path(venv_dir)
    if not python_path(venv_dir).exists():
        venv.EnvBuilder(with_pip=True).create(venv_dir)
    command = [str(python_path(venv_dir)), "-m", "pip", "install", *PACKAGES]
    if quiet:
        command.insert(4, "--quiet")
    print(f"creating d3rlpy venv: {' '.join(command)}", file=sys.stderr)
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise D3rlpyEnvError(
            f"pip install {' '.join(PACKAGES)} into {venv_dir} failed (exit {result.returncode})"
        )
    check = subprocess.run(
        [str(python_path(venv_dir)), "-c", "import d3rlpy, gymnasium; gymnasium.make('Hopper-v5')"],
        check=False,
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        raise D3rlpyEnvError(f"{venv_dir}: d3rlpy or Hopper-v5 unusable:\n{check.stderr[-2000:]}")
    stamp.write_text(wanted)
    return python_path(venv_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--venv", type=Path, default=VENV_DIR)
    args = parser.parse_args()
    print(ensure_d3rlpy_env(args.venv, quiet=False))


if __name__ == "__main__":
    main()
