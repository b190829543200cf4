"""`python -m pipelines.report`: the results report over every experiment (docs/tracking.md).

    python -m pipelines.report [--include RE] [--wandb]   gather, then `dvc repro report` (make report)
    python -m pipelines.report gather [--include RE] [--wandb]
    python -m pipelines.report render                    the DVC stage `report`

`gather` reads every committed experiment (`dvc exp show --json --all-commits`, curves via git)
and, with `--wandb` when wandb is online, the project's runs, into reports/experiments.json,
rewritten only when its content changes. `render` is the stage: a pure function of that file,
writing reports/results.md, results.csv and curves.png. Gathering is not a stage: its input is the
set of git refs, which DVC cannot hash, and a stage that always runs would leave `dvc status`
never clean and run inside every `dvc exp run`. Logic: analysis/experiments.py (gathering),
analysis/report.py (snapshot file, tables, plot).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
from pathlib import Path

from analysis.experiments import (
    dvc_exp_show,
    gather_dvc,
    gather_wandb,
    git_commit_times,
    git_file_reader,
)
from analysis.report import render
from analysis.snapshot import Snapshot, read_snapshot, snapshot_text, write_if_changed
from core.errors import CommandFailed
from datagen.collection.config import dataset_namespace
from offline_rl.config import WandbConfig
from pipelines.loggers import wandb_mode
from pipelines.params import load_params, section
from pipelines.paths import REPORTS, SNAPSHOT
from pipelines.stage import run_stage

log = logging.getLogger("pipelines.report")


def gather(include: str | None, use_wandb: bool, snapshot: Path = SNAPSHOT) -> bool:
    """Write the snapshot of every experiment; True if its content changed."""
    runs = gather_dvc(
        dvc_exp_show(), git_file_reader(), git_commit_times(), dataset_namespace, include
    )
    sources = ["dvc"]
    if use_wandb:
        config = section(load_params(), WandbConfig)
        if wandb_mode(config) == "online":
            import wandb

            path = f"{config.entity}/{config.project}" if config.entity else config.project
            runs += gather_wandb(wandb.Api(), path, dataset_namespace, include)
            sources.append("wandb")
        else:
            log.warning("--wandb ignored: wandb is not online (no API key); using DVC only")
    changed = write_if_changed(
        snapshot, snapshot_text(Snapshot(tuple(runs), tuple(sources), include))
    )
    log.info("%d runs -> %s (%s)", len(runs), snapshot, "updated" if changed else "unchanged")
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[2:5]),
    )
    parser.add_argument(
        "step",
        nargs="?",
        choices=["all", "gather", "render"],
        default="all",
        help="all (default): gather, then `dvc repro report`; gather: the snapshot only; "
        "render: the stage's command",
    )
    parser.add_argument("--include", help="gather only experiments whose name matches this regex")
    parser.add_argument(
        "--wandb", action="store_true", help="also gather the wandb project (online only)"
    )
    args = parser.parse_args()
    if args.step == "render":
        if args.include or args.wandb:
            parser.error("--include and --wandb belong to gathering, not render")
        cells = render(read_snapshot(SNAPSHOT), REPORTS)
        log.info("%s -> %d table cells in %s", SNAPSHOT, len(cells), REPORTS)
        return
    gather(args.include, args.wandb)
    if args.step == "all":
        command = ["dvc", "repro", "report"]
        if subprocess.run(command, check=False).returncode != 0:
            raise CommandFailed(f"{' '.join(command)} failed (its output is above)")
        print((REPORTS / "results.md").read_text())


if __name__ == "__main__":
    run_stage(main)
