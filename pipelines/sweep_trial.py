"""One trial of a wandb sweep: `python -m pipelines.sweep_trial lr=3e-4 train.algo=bc ...` runs
`dvc exp run -S lr=3e-4 -S train.algo=bc ...`, so every trial is a DVC experiment, then reports the
experiment's metrics to the sweep's run (sweeps/wandb_sweep.yaml, docs/tracking.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from offline_rl.config import ConfigError
from offline_rl.errors import CommandFailed
from pipelines.common import run_stage

METRICS = (Path("metrics/train.json"), Path("metrics/evaluate.json"))
# Set by `wandb agent` for the trial's own run; the stages must not inherit them, or each stage
# would log into (and overwrite) that one run.
AGENT_ENV = ("WANDB_RUN_ID", "WANDB_SWEEP_ID", "WANDB_SWEEP_PARAM_PATH", "WANDB_RESUME")


def set_args(argv: list[str]) -> list[str]:
    """wandb's `key=value` (or `--key=value`) arguments -> `-S key=value` for `dvc exp run`."""
    out: list[str] = []
    for arg in argv:
        key, sep, value = arg.removeprefix("--").partition("=")
        if not sep or not key:
            raise ConfigError(f"sweep argument {arg!r}: expected key=value (a params.yaml path)")
        out += ["-S", f"{key}={value}"]
    return out


def experiment_name(run_id: str | None) -> str | None:
    return f"sweep-{run_id}" if run_id else None


def main() -> None:
    args = set_args(sys.argv[1:])
    run: Any = None
    if os.environ.get("WANDB_SWEEP_ID"):
        import wandb

        run = wandb.init(job_type="sweep-trial")
    name = experiment_name(run.id if run is not None else None)
    command = ["dvc", "exp", "run", *args] + (["-n", name] if name else [])
    env = {k: v for k, v in os.environ.items() if k not in AGENT_ENV}
    result = subprocess.run(command, env=env, check=False)
    if run is not None:
        metrics: dict[str, Any] = {}
        for path in METRICS:
            if path.exists():
                metrics |= json.loads(path.read_text())
        run.summary.update({**metrics, "dvc_experiment": name, "dvc_exit_code": result.returncode})
        run.finish(exit_code=result.returncode)
    if result.returncode != 0:
        raise CommandFailed(f"{' '.join(command)} failed with exit code {result.returncode}")


if __name__ == "__main__":
    run_stage(main)
