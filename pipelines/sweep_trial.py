"""One trial of a wandb sweep: `python -m pipelines.sweep_trial lr=3e-4 train.algo=bc ...` runs
`dvc exp run --temp -S lr=3e-4 -S train.algo=bc ... -n sweep-<run id>`, so every trial is a DVC
experiment, then reports the experiment's metrics to the sweep's run (sweeps/wandb_sweep.yaml,
docs/tracking.md).

`--temp` runs the experiment in its own temporary copy of the repository (.dvc/tmp/exps/), not in
the workspace: several agents on one machine run trials side by side without one overwriting the
other's params.yaml, outputs or dvc.lock, and the workspace is left as it was. The copy holds what
git tracks (uncommitted changes included; a new file must be `git add`ed to be seen) plus the
workspace's dvc.lock, so stages whose inputs the trial does not change are skipped there as in the
workspace (`trial_command`); their cached outputs come from DVC's cache. The experiment commit then
holds the metrics of the stages that ran (train, evaluate), not of the skipped ones.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from core.config import ConfigError
from core.errors import CommandFailed
from pipelines.stage import run_stage

METRICS = ("metrics/train.json", "metrics/evaluate.json")
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


def experiment_name(run_id: str | None) -> str:
    """`sweep-<wandb run id>`, or a random suffix for a trial run by hand: the trial finds its
    experiment's results by this name, since they never reach the workspace."""
    return f"sweep-{run_id or secrets.token_hex(4)}"


def trial_command(args: list[str], name: str, workspace: Path = Path(".")) -> list[str]:
    """`dvc exp run --temp` for one trial. Its copy of the repository holds what git tracks, so:
    - dvc.lock is copied in (`make repro` writes it; it is not committed): without it every stage
      would look new and rerun, behaviour training included;
    - `--allow-missing` skips a stage whose only change is an output missing there: the uncached
      ones (metrics, curves, resume states) are not in DVC's cache, so they are never copied in,
      and a stage lacking one would rerun. Cached outputs are checked out from the cache.
    """
    command = ["dvc", "exp", "run", "--temp", "--allow-missing"]
    if (workspace / "dvc.lock").exists():
        command += ["--copy-paths", "dvc.lock"]
    return [*command, *args, "-n", name]


def experiment_metrics(name: str, cwd: Path = Path(".")) -> dict[str, Any]:
    """The metrics files committed in experiment `name` (refs/exps/.../<name>), merged."""
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", "refs/exps/"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    ref = next((r for r in refs if r.rsplit("/", 1)[-1] == name), None)
    if ref is None:
        raise CommandFailed(f"experiment {name!r} not found after `dvc exp run` (git refs/exps/)")
    metrics: dict[str, Any] = {}
    for path in METRICS:
        shown = subprocess.run(
            ["git", "show", f"{ref}:{path}"], cwd=cwd, capture_output=True, text=True, check=False
        )
        if shown.returncode == 0:
            metrics |= json.loads(shown.stdout)
    return metrics


def run_trial(argv: list[str], run_id: str | None = None) -> tuple[str, int, dict[str, Any]]:
    """Run one trial as a DVC experiment: its name, `dvc exp run`'s exit code, its metrics."""
    name = experiment_name(run_id)
    command = trial_command(set_args(argv), name)
    env = {k: v for k, v in os.environ.items() if k not in AGENT_ENV}
    result = subprocess.run(command, env=env, check=False)
    metrics = experiment_metrics(name) if result.returncode == 0 else {}
    return name, result.returncode, metrics


def main() -> None:
    run: Any = None
    set_args(sys.argv[1:])  # a malformed argument fails before wandb starts a run
    if os.environ.get("WANDB_SWEEP_ID"):
        import wandb

        run = wandb.init(job_type="sweep-trial")
    name, code, metrics = run_trial(sys.argv[1:], run.id if run is not None else None)
    if run is not None:
        run.summary.update({**metrics, "dvc_experiment": name, "dvc_exit_code": code})
        run.finish(exit_code=code)
    if code != 0:
        raise CommandFailed(f"dvc exp run of trial {name} failed with exit code {code}")
    print(json.dumps({"experiment": name, **metrics}))


if __name__ == "__main__":
    run_stage(main)
