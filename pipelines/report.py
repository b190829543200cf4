"""`python -m pipelines.report`: gather every DVC experiment (and wandb runs when online) into
reports/results.md, reports/results.csv and reports/curves.png (see docs/tracking.md).

Not a stage of the pipeline, on purpose: it reads across experiments (`dvc exp show`), and a
stage would run inside every `dvc exp run` (in queued temp copies too), where the experiment
being run is not committed yet. Run it after the experiments (`make report`), or as the optional
stage of docs/tracking.md (`reports/dvc.yaml`, `dvc repro reports/dvc.yaml:report`). Best score = `eval/best_normalized_score` of metrics/train.json (the best
evaluation during training); final = the evaluate stage's score.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import re
import subprocess
from pathlib import Path
from typing import Any

from offline_rl.report import RunResult, write_report
from offline_rl.tracking import WandbConfig
from pipelines.common import dataset_namespace, load_params, run_stage, section, wandb_mode

EVAL_CURVE = "plots/train/eval.csv"
SCORE = "eval/normalized_score_mean"
log = logging.getLogger("pipelines.report")


def _metrics(data: dict[str, Any], file: str) -> dict[str, Any]:
    return ((data.get("metrics") or {}).get(file) or {}).get("data") or {}


def _curve_text(rev: str) -> str | None:
    if rev == "workspace":
        path = Path(EVAL_CURVE)
        return path.read_text() if path.exists() else None
    shown = subprocess.run(
        ["git", "show", f"{rev}:{EVAL_CURVE}"], capture_output=True, text=True, check=False
    )
    return shown.stdout if shown.returncode == 0 else None


def parse_curve(text: str | None) -> tuple[tuple[int, float], ...]:
    if not text:
        return ()
    rows = csv.DictReader(io.StringIO(text))
    return tuple((int(float(r["step"])), float(r[SCORE])) for r in rows if r.get(SCORE))


def run_from_dvc(name: str, rev: str, data: dict[str, Any]) -> RunResult | None:
    """A table row from one `dvc exp show --json` entry; None when it has no trained agent."""
    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
    train, evaluate = _metrics(data, "metrics/train.json"), _metrics(data, "metrics/evaluate.json")
    final = evaluate.get("evaluate/normalized_score_mean", train.get(SCORE))
    if final is None:
        return None
    datasets = (params.get("preprocess") or {}).get("datasets") or []
    namespace = dataset_namespace(str(params.get("env", "?")))
    best = train.get("eval/best_normalized_score")
    return RunResult(
        name=name,
        algo=str(train.get("algo") or (params.get("train") or {}).get("algo")),
        dataset="+".join(f"{namespace}/{d}-v0" for d in datasets),
        seed=int(params.get("seed", 0)),
        final_score=float(final),
        best_score=None if best is None else float(best),
        curve=parse_curve(_curve_text(rev)),
    )


def dvc_runs(table: list[dict[str, Any]], include: str | None) -> list[RunResult]:
    """Experiments first (newest first, as DVC lists them), then baselines and the workspace."""
    entries: list[tuple[str, str, dict[str, Any]]] = []
    baselines = []
    for baseline in table:
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs") or []:
                entries.append(
                    (rev.get("name") or rev["rev"][:7], rev["rev"], rev.get("data") or {})
                )
        name = baseline.get("name") or baseline["rev"][:7]
        baselines.append((name, baseline["rev"], baseline.get("data") or {}))
    runs = []
    for name, rev, data in entries + baselines:
        if include and not re.search(include, name):
            continue
        run = run_from_dvc(name, rev, data)
        if run is not None:
            runs.append(run)
    return runs


def wandb_runs(config: WandbConfig) -> list[RunResult]:
    """Finished `train` runs of the wandb project (summary + evaluation history)."""
    import wandb

    api = wandb.Api()
    path = f"{config.entity}/{config.project}" if config.entity else config.project
    runs = []
    for run in api.runs(path, filters={"jobType": "train", "state": "finished"}):
        summary, cfg = run.summary, run.config
        if SCORE not in summary:
            continue
        history = run.history(keys=[SCORE], pandas=False)
        namespace = dataset_namespace(str(cfg.get("env", "?")))
        datasets = (cfg.get("preprocess") or {}).get("datasets") or []
        best = summary.get("eval/best_normalized_score")
        runs.append(
            RunResult(
                name=run.name,
                algo=str(summary.get("algo") or (cfg.get("train") or {}).get("algo")),
                dataset="+".join(f"{namespace}/{d}-v0" for d in datasets),
                seed=int(cfg.get("seed", 0)),
                final_score=float(summary[SCORE]),
                best_score=None if best is None else float(best),
                curve=tuple((int(h["_step"]), float(h[SCORE])) for h in history if SCORE in h),
            )
        )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--include", help="only experiments whose name matches this regex")
    parser.add_argument(
        "--wandb", action="store_true", help="also read the wandb project (online mode only)"
    )
    parser.add_argument(
        "--all-commits", action="store_true", help="experiments of every commit, not only HEAD"
    )
    args = parser.parse_args()
    command = ["dvc", "exp", "show", "--json"] + (["--all-commits"] if args.all_commits else [])
    shown = subprocess.run(command, capture_output=True, text=True, check=False)
    if shown.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {shown.stderr.strip()}")
    runs = dvc_runs(json.loads(shown.stdout), args.include)
    if args.wandb:
        config = section(load_params(), "wandb", WandbConfig)
        if wandb_mode(config) == "online":
            runs = runs + wandb_runs(config)  # DVC rows first: they win duplicates
        else:
            log.warning("--wandb ignored: wandb is not online (no API key); using DVC only")
    cells = write_report(runs, args.out)
    log.info("%d runs -> %d table cells in %s", len(runs), len(cells), args.out)
    print((args.out / "results.md").read_text())


if __name__ == "__main__":
    run_stage(main)
