"""`make fidelity`: the Hopper fidelity run (docs/fidelity.md) as one command, in parts.

    python -m pipelines.fidelity apply    params.yaml <- the preset's sections (run it in a clone of
                                          its own: it rewrites params.yaml)
    python -m pipelines.fidelity data     `dvc repro preprocess`: behaviour SAC, the six datasets at
                                          D4RL's sizes, the transitions files; `dvc push` after it
                                          when a default remote is set
    python -m pipelines.fidelity train    one `dvc exp run` per algorithm x dataset of the preset's
                                          grid, its training seeds together (`fid-<algo>-<dataset>`)
    python -m pipelines.fidelity report   reports/fidelity.md and .json: each dataset beside D4RL's,
                                          each algorithm's score beside CORL's, the acceptance checks
    python -m pipelines.fidelity          all four

The preset (params/fidelity-hopper.yaml) holds the params.yaml sections it replaces and, apart, a
`fidelity:` section (the training grid and the published numbers to compare with), which this
command reads and never writes into params.yaml. Every part logs its wall time to
reports/fidelity-times.json, so the document's timings come from the run itself.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from analysis.experiments import gather_dvc, git_commit_times, git_file_reader
from core.atomic import atomic_path, write_json
from core.config import StrictModel, parse_config
from datagen.collection.config import dataset_namespace
from pipelines.params import PARAMS_FILE, load_params
from pipelines.stage import run_stage

PRESET = Path("params/fidelity-hopper.yaml")
REPORT = Path("reports/fidelity.md")
RESULTS = Path("reports/fidelity.json")
TIMES = Path("reports/fidelity-times.json")
log = logging.getLogger("pipelines.fidelity")


class Published(StrictModel):
    """A published number and where it comes from."""

    value: float
    std: float | None = None
    source: str


class Grid(StrictModel):
    algos: list[str] = Field(min_length=1)
    datasets: list[str] = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    # extra `-S key=value` per algorithm (IQL's reward scaling is a data setting)
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)


class FidelityConfig(StrictModel):
    namespace: str = "hopper"
    grid: Grid
    # published scores: algorithm -> dataset kind -> number (CORL's table)
    scores: dict[str, dict[str, Published]] = Field(default_factory=dict)
    # the D4RL datasets' own statistics: dataset kind -> statistic -> number
    datasets: dict[str, dict[str, Published]] = Field(default_factory=dict)


def read_preset(path: Path = PRESET) -> tuple[dict[str, Any], FidelityConfig]:
    """The params.yaml sections the preset replaces, and its `fidelity:` section."""
    preset = yaml.safe_load(path.read_text())
    own = preset.pop("fidelity", None)
    return preset, parse_config(FidelityConfig, own, "fidelity", str(path))


_TIMES_LOCK = threading.Lock()


def timed(part: str, command: list[str]) -> None:
    """Run `command`, failing loudly, and record its wall time under `part`."""
    log.info("%s: %s", part, " ".join(command))
    started = time.perf_counter()
    subprocess.run(command, check=True)
    with _TIMES_LOCK:  # experiments may run side by side (train --jobs)
        times = json.loads(TIMES.read_text()) if TIMES.exists() else {}
        times[part] = {"seconds": round(time.perf_counter() - started, 1), "command": command}
        write_json(TIMES, times)


def apply() -> None:
    params = load_params()
    sections, _ = read_preset()
    params.update(sections)
    with atomic_path(PARAMS_FILE, suffix=".yaml") as tmp:
        tmp.write_text(yaml.safe_dump(params, sort_keys=False))
    log.info("%s: sections %s replaced by %s's", PARAMS_FILE, sorted(sections), PRESET)


def has_default_remote() -> bool:
    shown = subprocess.run(["dvc", "remote", "default"], capture_output=True, text=True)
    return shown.returncode == 0 and bool(shown.stdout.strip())


def has_git_remote(name: str) -> bool:
    return subprocess.run(["git", "remote", "get-url", name], capture_output=True).returncode == 0


def data() -> None:
    timed("data", ["dvc", "repro", "preprocess"])
    if has_default_remote():
        timed("data push", ["dvc", "push"])


def experiment_name(algo: str, dataset: str) -> str:
    return f"fid-{algo}-{dataset}"


def preset_value(sections: dict[str, Any], dotted: str) -> Any:
    node: Any = sections
    for part in dotted.split("."):
        node = node[part]
    return node


def existing_experiments() -> set[str]:
    """Names of the experiments of this workspace's baseline (`dvc exp show`)."""
    shown = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True)
    if shown.returncode != 0:
        return set()
    names: set[str] = set()
    for baseline in json.loads(shown.stdout or "[]"):
        for exp in baseline.get("experiments") or []:
            names.update(str(rev.get("name")) for rev in exp.get("revs") or [])
    return names


def train(only: list[str] | None = None, again: bool = False, jobs: int = 1) -> None:
    """The grid's experiments, `jobs` at a time, each in a temporary copy of the repository
    (`dvc exp run --temp`: the workspace's params.yaml stays the preset's, and experiments can
    run side by side); one already made is skipped unless `again`, so a killed `train` part
    resumes where it stopped."""
    sections, config = read_preset()
    grid = config.grid
    steps = int(sections["train"]["steps"])
    # `dvc exp run` leaves its -S changes in the workspace: every key any experiment changes is
    # set in every experiment, to the preset's value where that experiment does not change it.
    overridden = {key for changes in grid.overrides.values() for key in changes}
    defaults = {key: preset_value({**load_params(), **sections}, key) for key in overridden}
    done = set() if again else existing_experiments()
    commands: list[tuple[str, list[str]]] = []
    for algo in grid.algos:  # algorithm by algorithm: IQL's data setting changes once
        for dataset in grid.datasets:
            name = experiment_name(algo, dataset)
            if (only and name not in only) or name in done:
                continue
            changes = {
                "train.algo": algo,
                "train.dataset": dataset,
                "train.seeds": json.dumps(grid.seeds),
                # IQL's cosine schedule spans the run, as in the paper and CORL
                "algos.iql.actor_lr_cosine_steps": steps,
                **defaults,
                **grid.overrides.get(algo, {}),
            }
            # The copy holds what git tracks (uncommitted changes too): dvc.lock, untracked, is
            # copied in, and --allow-missing keeps stages whose only change is an uncached
            # output (metrics, resume states) from rerunning there.
            # No --force: for `dvc exp run` it also means "rerun every stage", behaviour included.
            command = ["dvc", "exp", "run", "--temp", "--allow-missing", "-n", name]
            command += ["--copy-paths", "dvc.lock"] if Path("dvc.lock").exists() else []
            command += [arg for key, value in changes.items() for arg in ("-S", f"{key}={value}")]
            commands.append((name, command))
    share = has_default_remote() and has_git_remote("origin")

    def run(name: str, command: list[str]) -> None:
        if again:  # an experiment's name is taken until it is removed
            subprocess.run(["dvc", "exp", "remove", name], capture_output=True, check=False)
        timed(f"train {name}", command)
        if share:  # the experiment's commit to origin, its cached outputs to the DVC remote
            subprocess.run(["dvc", "exp", "push", "origin", name], check=False)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(run, name, command) for name, command in commands]:
            future.result()


def collect_metrics(namespace: str, kind: str) -> dict[str, Any] | None:
    path = Path(f"metrics/collect/{namespace}/{kind}.json")
    return json.loads(path.read_text()) if path.exists() else None


def report() -> None:
    _, config = read_preset()
    table = json.loads(
        subprocess.run(
            ["dvc", "exp", "show", "--json"], capture_output=True, text=True, check=True
        ).stdout
    )
    runs = gather_dvc(table, git_file_reader(), git_commit_times(), dataset_namespace, "^fid-")
    scores: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        kind = run.dataset.split("/")[-1].removesuffix("-v0")
        if run.final_score is not None:
            scores.setdefault(run.algo, {}).setdefault(kind, []).append(run.final_score)
    datasets = {
        kind: collect_metrics(config.namespace, kind)
        for kind in ("random", "medium", "expert", "medium-replay", "full-replay", "medium-expert")
    }
    checks = acceptance(scores, datasets)
    write_json(RESULTS, {"scores": scores, "datasets": datasets, "checks": checks})
    with atomic_path(REPORT, suffix=".md") as tmp:
        tmp.write_text(render_report(config, scores, datasets, checks))
    log.info("wrote %s and %s", REPORT, RESULTS)


def number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.pstdev(values)


def acceptance(
    scores: dict[str, dict[str, list[float]]], datasets: dict[str, dict[str, Any] | None]
) -> list[dict[str, Any]]:
    """The issue's checks on our data; a check without its numbers yet is `pending`."""

    def mean_of(algo: str, kind: str) -> float | None:
        values = scores.get(algo, {}).get(kind)
        return statistics.fmean(values) if values else None

    checks: list[dict[str, Any]] = []
    medium = datasets.get("medium")
    bc_medium = mean_of("bc", "medium")
    if medium is not None and bc_medium is not None:
        gap = abs(bc_medium - medium["normalized_score"])
        checks.append({"check": "BC on medium within 10 of the medium data's own score",
                       "value": gap, "passed": gap <= 10})  # fmt: skip
    bc_replay = mean_of("bc", "medium-replay")
    for algo in ("td3_bc", "iql"):
        score = mean_of(algo, "medium-replay")
        if score is not None and bc_replay is not None:
            checks.append({"check": f"{algo} on medium-replay at least twice BC's",
                           "value": score / bc_replay if bc_replay > 0 else float("inf"),
                           "passed": score >= 2 * bc_replay})  # fmt: skip
    expert_mix = mean_of("td3_bc", "medium-expert")
    if expert_mix is not None:
        checks.append({"check": "td3_bc on medium-expert at least 80", "value": expert_mix,
                       "passed": expert_mix >= 80})  # fmt: skip
    return checks


def render_report(
    config: FidelityConfig,
    scores: dict[str, dict[str, list[float]]],
    datasets: dict[str, dict[str, Any] | None],
    checks: list[dict[str, Any]],
) -> str:
    lines = ["# Hopper fidelity run: results", "",
             "Generated by `python -m pipelines.fidelity report`; docs/fidelity.md explains them.",
             "", "## Datasets", "",
             "| dataset | steps | episodes | mean return | normalised | D4RL hopper-*-v2 |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
    for kind, stats in datasets.items():
        published = config.datasets.get(kind, {})
        theirs = ", ".join(f"{k} {number(v.value)}" for k, v in published.items()) or "-"
        if stats is None:
            lines.append(f"| {kind} | - | - | - | - | {theirs} |")
            continue
        lines.append(
            f"| {kind} | {stats['steps']:,} | {stats['episodes']:,} | {stats['return_mean']:,.1f}"
            f" | {stats['normalized_score']:.1f} | {theirs} |"
        )
    lines += ["", "## Final normalised scores (mean ± std over seeds)", "",
              "| algorithm | dataset | ours | seeds | CORL |", "| --- | --- | ---: | ---: | ---: |"]  # fmt: skip
    for algo in config.grid.algos:
        for kind in config.grid.datasets:
            values = scores.get(algo, {}).get(kind)
            ours = "-" if not values else "{:.1f} ± {:.1f}".format(*mean_std(values))
            ref = config.scores.get(algo, {}).get(kind)
            theirs = (
                "-"
                if ref is None
                else f"{ref.value:.1f}" + (f" ± {ref.std:.1f}" if ref.std is not None else "")
            )
            lines.append(f"| {algo} | {kind} | {ours} | {len(values or [])} | {theirs} |")
    lines += ["", "## Acceptance checks", ""]
    lines += [
        f"- {'PASS' if c['passed'] else 'FAIL'}: {c['check']} ({c['value']:.2f})" for c in checks
    ]
    if not checks:
        lines.append("- pending: no training result yet")
    sources = sorted(
        {
            p.source
            for table in (config.scores, config.datasets)
            for row in table.values()
            for p in row.values()
        }
    )
    lines += ["", "## Sources", ""] + [f"- {s}" for s in sources]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "part", nargs="?", choices=("apply", "data", "train", "report", "all"), default="all"
    )
    parser.add_argument(
        "--only", nargs="*", help="train: only these experiments (fid-<algo>-<dataset>)"
    )
    parser.add_argument("--again", action="store_true", help="train: rerun experiments made")
    parser.add_argument("--jobs", type=int, default=1, help="train: experiments side by side")
    args = parser.parse_args()
    if args.part in ("apply", "all"):
        apply()
    if args.part in ("data", "all"):
        data()
    if args.part in ("train", "all"):
        train(args.only, args.again, args.jobs)
    if args.part in ("report", "all"):
        report()


if __name__ == "__main__":
    run_stage(main)
