"""Results tables as offline-RL papers print them (CORL's shape): per algorithm x dataset, the final
and the best normalised score, mean ± std over seeds, as Markdown and CSV, and the evaluation
curves per dataset (mean and spread over seeds) as a PNG.

Input is the snapshot file (reports/experiments.json, analysis/snapshot.py): the runs that analysis/experiments.py
gathered from DVC experiments and wandb, in the order in which they win duplicates. Rendering is a
pure function of the snapshot, so it is the DVC stage `report` (docs/tracking.md).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.snapshot import RunResult, Snapshot
from core.atomic import atomic_path


@dataclass(frozen=True)
class Cell:
    algo: str
    dataset: str
    seeds: tuple[int, ...]
    final_mean: float
    final_std: float
    best_mean: float
    best_std: float


def dedupe(runs: Sequence[RunResult]) -> list[RunResult]:
    """One run per (algo, dataset, data seed, training seed): the first listed wins (sources
    list newest first)."""
    seen: dict[tuple[str, str, int | None, int], RunResult] = {}
    for run in runs:
        seen.setdefault((run.algo, run.dataset, run.data_seed, run.seed), run)
    return list(seen.values())


def _mean_std(values: list[float]) -> tuple[float, float]:
    # Population std (ddof=0) over seeds, as CORL's tables report it.
    return float(np.mean(values)), float(np.std(values))


def _best(run: RunResult) -> float:
    known = [v for v in (run.best_score, run.final_score) if v is not None]
    return max(known)


def aggregate(runs: Sequence[RunResult]) -> list[Cell]:
    groups: dict[tuple[str, str], list[RunResult]] = defaultdict(list)
    for run in dedupe(runs):
        if run.final_score is not None:
            groups[(run.algo, run.dataset)].append(run)
    cells = []
    for (algo, dataset), group in sorted(groups.items()):
        finals = [r.final_score for r in group if r.final_score is not None]
        bests = [_best(r) for r in group]
        final_mean, final_std = _mean_std(finals)
        best_mean, best_std = _mean_std(bests)
        seeds = tuple(sorted(r.seed for r in group))
        cells.append(Cell(algo, dataset, seeds, final_mean, final_std, best_mean, best_std))
    return cells


def to_csv(cells: list[Cell]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["algo", "dataset", "n_seeds", "seeds", "final_mean", "final_std", "best_mean", "best_std"]
    )
    for c in cells:
        writer.writerow(
            [
                c.algo,
                c.dataset,
                len(c.seeds),
                " ".join(map(str, c.seeds)),
                f"{c.final_mean:.4f}",
                f"{c.final_std:.4f}",
                f"{c.best_mean:.4f}",
                f"{c.best_std:.4f}",
            ]
        )
    return out.getvalue()


def _table(cells: list[Cell], title: str, best: bool) -> list[str]:
    algos = sorted({c.algo for c in cells})
    datasets = sorted({c.dataset for c in cells})
    by_key = {(c.algo, c.dataset): c for c in cells}
    lines = [f"### {title}", "", "| Dataset | " + " | ".join(algos) + " |"]
    lines.append("|---|" + "---|" * len(algos))
    for dataset in datasets:
        row = []
        for algo in algos:
            c = by_key.get((algo, dataset))
            if c is None:
                row.append("–")
            else:
                mean, std = (c.best_mean, c.best_std) if best else (c.final_mean, c.final_std)
                row.append(f"{mean:.1f} ± {std:.1f} (n={len(c.seeds)})")
        lines.append(f"| {dataset} | " + " | ".join(row) + " |")
    averages = []
    for algo in algos:
        values = [
            (c.best_mean if best else c.final_mean) for c in cells if c.algo == algo
        ]  # mean over datasets of the per-dataset means, as CORL's "Total"/"Average" rows
        averages.append(f"{np.mean(values):.1f}")
    lines.append("| **Average** | " + " | ".join(averages) + " |")
    return [*lines, ""]


def _sources_line(snapshot: Snapshot) -> str:
    names = {"dvc": "DVC experiments and commits", "wandb": "finished wandb runs"}
    line = "Gathered from " + " and ".join(names.get(s, s) for s in snapshot.sources)
    if snapshot.include:
        line += f", names matching `{snapshot.include}`"
    return line + " (reports/experiments.json; `make report` to refresh)."


def _runs_table(runs: list[RunResult], left_out: int) -> list[str]:
    lines = [
        "### Runs",
        "",
        "| run | source | algo | dataset | seed | final | best |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(runs, key=lambda r: (r.dataset, r.algo, r.seed)):
        best = "–" if r.best_score is None else f"{r.best_score:.1f}"
        lines.append(
            f"| {r.name} | {r.source} | {r.algo} | {r.dataset} | {r.seed} "
            f"| {r.final_score:.1f} | {best} |"
        )
    if left_out:
        lines += [
            "",
            f"{left_out} more run(s) repeat an algorithm x dataset x seed above and are left out "
            "(the newest DVC result wins, then the newest wandb run).",
        ]
    return [*lines, ""]


def to_markdown(cells: list[Cell], snapshot: Snapshot | None = None) -> str:
    snapshot = snapshot or Snapshot()
    lines = [
        "# Results",
        "",
        "D4RL-normalised score (x100), mean ± std over seeds (population std); n = seeds.",
        _sources_line(snapshot),
        "",
    ]
    if not cells:
        lines += [
            "No experiment with a score yet. Run some (`dvc exp run`, or `dvc repro` and commit),",
            "then `make report`.",
            "",
        ]
        return "\n".join(lines)
    scored = [r for r in snapshot.runs if r.final_score is not None]
    kept = dedupe(scored)
    lines += [
        *_table(cells, "Final score", best=False),
        *_table(cells, "Best score during training", best=True),
        *(_runs_table(kept, len(scored) - len(kept)) if snapshot.runs else []),
    ]
    return "\n".join(lines)


def _curve_stats(runs: list[RunResult]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std over seeds at the steps every seed evaluated."""
    common = sorted(set.intersection(*(set(s for s, _ in r.curve) for r in runs)))
    values = np.array([[dict(r.curve)[s] for s in common] for r in runs])
    return np.array(common), values.mean(0), values.std(0)


def plot_curves(runs: Sequence[RunResult], path: Path) -> Path:
    """One panel per dataset, one line per algorithm: mean over seeds with a ± std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in dedupe(runs) if r.curve]
    datasets = sorted({r.dataset for r in runs}) or ["(no curves)"]
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(5 * len(datasets), 3.6), squeeze=False, sharey=True
    )
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for algo in sorted({r.algo for r in runs if r.dataset == dataset}):
            group = [r for r in runs if r.dataset == dataset and r.algo == algo]
            steps, mean, std = _curve_stats(group)
            if steps.size == 0:
                continue
            line = ax.plot(steps, mean, label=f"{algo} (n={len(group)})")[0]
            ax.fill_between(steps, mean - std, mean + std, alpha=0.25, color=line.get_color())
        ax.set_title(dataset)
        ax.set_xlabel("gradient step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="small")
        else:
            ax.text(0.5, 0.5, "no evaluation curves yet", ha="center", transform=ax.transAxes)
    axes[0][0].set_ylabel("normalised score (mean ± std over seeds)")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def render(snapshot: Snapshot, out_dir: Path) -> list[Cell]:
    """results.md, results.csv and curves.png in `out_dir` from the snapshot; returns the cells."""
    cells = aggregate(snapshot.runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("results.md", to_markdown(cells, snapshot)),
        ("results.csv", to_csv(cells)),
    ):
        with atomic_path(out_dir / name, suffix=Path(name).suffix) as tmp:
            tmp.write_text(text)
    plot_curves(snapshot.runs, out_dir / "curves.png")
    return cells


def write_report(runs: Sequence[RunResult], out_dir: Path) -> list[Cell]:
    """The report of `runs` (a snapshot from DVC only); returns the table cells."""
    return render(Snapshot(runs=tuple(runs)), out_dir)
