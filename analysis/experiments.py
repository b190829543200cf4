"""Gather every experiment's result from where it was recorded, for the results report.

Sources:

- DVC: `dvc exp show --json --all-commits` lists every experiment (refs/exps) and every commit;
  a row is made from each one whose metrics files hold a score (`metrics/evaluate.json`,
  `metrics/train.json`), with its evaluation curve (`plots/train/eval.csv`) read from git at that
  revision. The workspace row is left out, and so are queued, running and failed experiments:
  only committed results count, so the rows are a function of the git refs alone.
- wandb (when online): the project's finished `train` runs, each with the score of the
  `evaluate` run of the same experiment (group and params), and its evaluation history.

`gather_*` return `RunResult`s in priority order (the first of an algorithm x dataset x seed wins
in the report): DVC rows newest first, then wandb rows newest first. Commits holding exactly the
same result collapse into one row (an experiment's if one holds it, else the oldest commit's),
so committing the report does not add a row and gathering again gives the same snapshot.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from analysis.snapshot import RunResult
from core.errors import CommandFailed

EVAL_CURVE = "plots/train/eval.csv"
SCORE = "eval/normalized_score_mean"  # train: each evaluation during training
FINAL = "evaluate/normalized_score_mean"  # evaluate: the final evaluation
BEST = "eval/best_normalized_score"
# Params that make two wandb runs (train, evaluate) the same experiment.
RUN_PARAMS = ("env", "seed", "train_seed", "lr", "preprocess", "train", "algos")

Namespace = Callable[[str], str]  # gymnasium id -> dataset namespace (Hopper-v5 -> hopper)
FileAt = Callable[[str, str], str | None]  # (git rev, path) -> text, None when absent


def _git(args: list[str], cwd: Path | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def dvc_exp_show(cwd: Path | None = None) -> list[dict[str, Any]]:
    """`dvc exp show --json --all-commits`: experiments of every commit, not only HEAD's, so
    committing the report (a new HEAD) does not hide the experiments it was made from."""
    command = ["dvc", "exp", "show", "--json", "--all-commits"]
    shown = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if shown.returncode != 0:
        raise CommandFailed(f"{' '.join(command)} failed: {shown.stderr.strip()}")
    table = json.loads(shown.stdout)
    if not isinstance(table, list):
        raise CommandFailed(f"{' '.join(command)}: unexpected output {shown.stdout[:200]!r}")
    return table


def git_file_reader(cwd: Path | None = None) -> FileAt:
    def read(rev: str, path: str) -> str | None:
        shown = _git(["show", f"{rev}:{path}"], cwd)
        return shown.stdout if shown.returncode == 0 else None

    return read


def git_commit_times(cwd: Path | None = None) -> Callable[[Iterable[str]], dict[str, int]]:
    """Commit time (seconds since the epoch, whatever the time zone) of each rev, in one call."""

    def times(revs: Iterable[str]) -> dict[str, int]:
        revs = sorted(set(revs))
        if not revs:
            return {}
        shown = _git(["log", "--no-walk=unsorted", "--format=%H %ct", *revs], cwd)
        if shown.returncode != 0:
            raise CommandFailed(f"git log of {len(revs)} revisions failed: {shown.stderr.strip()}")
        pairs = (line.split() for line in shown.stdout.splitlines() if line.strip())
        return {sha: int(seconds) for sha, seconds in pairs}

    return times


def parse_curve(text: str | None, seed: int | None = None) -> tuple[tuple[int, float], ...]:
    """(step, normalised score) rows of plots/train/eval.csv; of one training seed's rows where
    the file has a `seed` column (a row per step and seed)."""
    if not text:
        return ()
    rows = csv.DictReader(io.StringIO(text))
    return tuple(
        (int(float(r["step"])), float(r[SCORE]))
        for r in rows
        if r.get(SCORE) and (seed is None or "seed" not in r or int(float(r["seed"])) == seed)
    )


def dataset_label(
    recorded: str | list[str] | None, params: Mapping[str, Any], namespace: Namespace
) -> str:
    """Minari ids joined with "+": the ids the run recorded, else derived from its params
    (a preprocess entry with a "/" is an imported id, else a generated kind)."""
    if isinstance(recorded, list) and recorded:
        return "+".join(str(d) for d in recorded)
    if isinstance(recorded, str) and recorded:
        return "+".join(recorded.split(","))
    ns = namespace(str(params.get("env", "?")))
    parts = (params.get("preprocess") or {}).get("datasets") or []
    return "+".join(str(p) if "/" in str(p) else f"{ns}/{p}-v0" for p in parts)


def _metrics(data: Mapping[str, Any], file: str) -> dict[str, Any]:
    return ((data.get("metrics") or {}).get(file) or {}).get("data") or {}


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def run_from_dvc(
    name: str, rev: str, data: Mapping[str, Any], read: FileAt, namespace: Namespace
) -> list[RunResult]:
    """The rows of one `dvc exp show --json` entry: one per training seed whose metrics hold a
    score (metrics files of a multi-seed run keep each seed's numbers under `seeds`), or one for
    the whole entry when its files predate training seeds; none when nothing holds a score."""
    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
    train, evaluate = _metrics(data, "metrics/train.json"), _metrics(data, "metrics/evaluate.json")
    algo = str(evaluate.get("algo") or train.get("algo") or (params.get("train") or {}).get("algo"))
    dataset = dataset_label(evaluate.get("dataset"), params, namespace)
    data_seed = int(params.get("seed", 0))
    curve_text = read(rev, EVAL_CURVE)
    per_seed_eval, per_seed_train = evaluate.get("seeds") or {}, train.get("seeds") or {}
    if not (per_seed_eval or per_seed_train):
        final = evaluate.get(FINAL, train.get(SCORE))
        if final is None:
            return []
        return [
            RunResult(name, algo, dataset, data_seed, float(final), _float(train.get(BEST)),
                      parse_curve(curve_text), "dvc", rev)
        ]  # fmt: skip
    runs = []
    for key in sorted(set(per_seed_eval) | set(per_seed_train), key=int):
        seed_eval, seed_train = per_seed_eval.get(key) or {}, per_seed_train.get(key) or {}
        final = seed_eval.get(FINAL, seed_train.get(SCORE))
        if final is None:
            continue
        runs.append(
            RunResult(
                name=f"{name}/seed{key}",
                algo=algo,
                dataset=dataset,
                seed=int(key),
                final_score=float(final),
                best_score=_float(seed_train.get(BEST)),
                curve=parse_curve(curve_text, int(key)),
                source="dvc",
                rev=rev,
                data_seed=data_seed,
            )
        )
    return runs


def _succeeded(exp: Mapping[str, Any]) -> bool:
    executor = exp.get("executor")
    return not executor or executor.get("state") == "success"


def dvc_entries(table: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any], bool]]:
    """(name, rev, data, is_experiment) of every committed experiment and commit in the table."""
    entries = []
    for baseline in table:
        rev = baseline.get("rev") or "workspace"
        if rev != "workspace" and not baseline.get("error"):
            entries.append((rev[:7], rev, baseline.get("data") or {}, False))
        for exp in baseline.get("experiments") or []:
            if not _succeeded(exp):
                continue  # queued, running or failed: nothing committed yet
            for exp_rev in exp.get("revs") or []:
                sha = exp_rev.get("rev") or ""
                if re.fullmatch(r"[0-9a-f]{40}", sha) and not exp_rev.get("error"):
                    name = exp_rev.get("name") or exp.get("name") or sha[:7]
                    entries.append((name, sha, exp_rev.get("data") or {}, True))
    return entries


def _result_key(run: RunResult) -> tuple[Any, ...]:
    return (
        run.algo,
        run.dataset,
        run.data_seed,
        run.seed,
        run.final_score,
        run.best_score,
        run.curve,
    )


def gather_dvc(
    table: list[dict[str, Any]],
    read: FileAt,
    times: Callable[[Iterable[str]], dict[str, int]],
    namespace: Namespace,
    include: str | None = None,
) -> list[RunResult]:
    """Rows from `dvc exp show --json` output, newest first, identical results collapsed."""
    candidates: dict[str, tuple[list[RunResult], bool]] = {}
    for name, rev, data, is_experiment in dvc_entries(table):
        if rev in candidates or (include and not re.search(include, name)):
            continue
        runs = run_from_dvc(name, rev, data, read, namespace)
        if runs:
            candidates[rev] = (runs, is_experiment)
    when = times(candidates)
    # One row per distinct result: an experiment's (the oldest) if any holds it, else the oldest
    # commit's, so new commits and experiments repeating a result leave the row as it was.
    chosen: dict[tuple[Any, ...], tuple[RunResult, bool]] = {}
    for rev, (runs, is_experiment) in sorted(
        candidates.items(), key=lambda item: (not item[1][1], when.get(item[0], 0), item[0])
    ):
        for run in runs:
            chosen.setdefault(
                _result_key(run), (replace(run, time=when.get(rev, 0)), is_experiment)
            )
    rows = sorted(chosen.values(), key=lambda c: (-c[0].time, not c[1], c[0].name, c[0].rev))
    return [run for run, _ in rows]


class WandbRun(Protocol):
    """What the report reads of a `wandb.apis.public.Run`."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def group(self) -> str | None: ...
    @property
    def created_at(self) -> str: ...
    @property
    def config(self) -> Mapping[str, Any]: ...
    @property
    def summary(self) -> Mapping[str, Any]: ...
    def scan_history(self, keys: list[str]) -> Iterable[Mapping[str, Any]]: ...


class WandbApi(Protocol):
    def runs(self, path: str, filters: dict[str, Any]) -> Iterable[WandbRun]: ...


def _epoch(created_at: str) -> int:
    return int(datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp())


def _same_experiment(run: WandbRun) -> str:
    params = {key: run.config.get(key) for key in RUN_PARAMS}
    return json.dumps([run.group, params], sort_keys=True, default=str)


def gather_wandb(
    api: WandbApi, path: str, namespace: Namespace, include: str | None = None
) -> list[RunResult]:
    """Finished `train` runs of the wandb project `path` (entity/project), newest first.

    Final score: the first finished `evaluate` run of the same group and params created after
    the train run (its `evaluate/normalized_score_mean`), else the train run's last evaluation.
    The curve is the whole evaluation history (`scan_history`, not the sampled `history`)."""
    evaluations: dict[str, list[tuple[int, float]]] = {}
    for run in api.runs(path, filters={"jobType": "evaluate", "state": "finished"}):
        if run.summary.get(FINAL) is not None:
            evaluations.setdefault(_same_experiment(run), []).append(
                (_epoch(run.created_at), float(run.summary[FINAL]))
            )
    rows = []
    for run in api.runs(path, filters={"jobType": "train", "state": "finished"}):
        name = run.name or run.id
        if SCORE not in run.summary or (include and not re.search(include, name)):
            continue
        created = _epoch(run.created_at)
        later = sorted(e for e in evaluations.get(_same_experiment(run), []) if e[0] >= created)
        cfg = run.config
        history = run.scan_history(keys=["_step", SCORE])
        rows.append(
            RunResult(
                name=name,
                algo=str(run.summary.get("algo") or (cfg.get("train") or {}).get("algo")),
                dataset=dataset_label(cfg.get("dataset_ids"), cfg, namespace),
                seed=int(cfg.get("train_seed", cfg.get("seed", 0))),
                final_score=later[0][1] if later else float(run.summary[SCORE]),
                best_score=_float(run.summary.get(BEST)),
                curve=tuple(
                    (int(h["_step"]), float(h[SCORE]))
                    for h in history
                    if h.get(SCORE) is not None and h.get("_step") is not None
                ),
                source="wandb",
                rev=run.id,
                time=created,
                data_seed=int(cfg["seed"]) if "train_seed" in cfg else None,
            )
        )
    return sorted(rows, key=lambda r: (-r.time, r.name, r.rev))
