"""Results tables as offline-RL papers print them (CORL's shape): per algorithm x dataset, the final
and the best normalised score, mean ± std over seeds, as Markdown and CSV, and the evaluation
curves per dataset (mean and spread over seeds) as a PNG. Input is a list of runs, wherever they
come from (DVC experiments, wandb): see pipelines/report.py."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from offline_rl.atomic import atomic_path


@dataclass(frozen=True)
class RunResult:
    name: str  # DVC experiment name or wandb run name
    algo: str
    dataset: str  # e.g. hopper/medium-v0
    seed: int
    final_score: float | None  # normalised score at the end (x100)
    best_score: float | None  # best normalised score seen during training
    curve: tuple[tuple[int, float], ...] = field(default=())  # (gradient step, normalised score)


@dataclass(frozen=True)
class Cell:
    algo: str
    dataset: str
    seeds: tuple[int, ...]
    final_mean: float
    final_std: float
    best_mean: float
    best_std: float


def dedupe(runs: list[RunResult]) -> list[RunResult]:
    """One run per (algo, dataset, seed): the first listed wins (sources list newest first)."""
    seen: dict[tuple[str, str, int], RunResult] = {}
    for run in runs:
        seen.setdefault((run.algo, run.dataset, run.seed), run)
    return list(seen.values())


def _mean_std(values: list[float]) -> tuple[float, float]:
    # Population std (ddof=0) over seeds, as CORL's tables report it.
    return float(np.mean(values)), float(np.std(values))


def _best(run: RunResult) -> float:
    known = [v for v in (run.best_score, run.final_score) if v is not None]
    return max(known)


def aggregate(runs: list[RunResult]) -> list[Cell]:
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


def to_markdown(cells: list[Cell]) -> str:
    lines = [
        "# Results",
        "",
        "D4RL-normalised score (x100), mean ± std over seeds (population std); n = seeds.",
        "",
        *_table(cells, "Final score", best=False),
        *_table(cells, "Best score during training", best=True),
    ]
    return "\n".join(lines)


def _curve_stats(runs: list[RunResult]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std over seeds at the steps every seed evaluated."""
    common = sorted(set.intersection(*(set(s for s, _ in r.curve) for r in runs)))
    values = np.array([[dict(r.curve)[s] for s in common] for r in runs])
    return np.array(common), values.mean(0), values.std(0)


def plot_curves(runs: list[RunResult], path: Path) -> Path:
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
        ax.legend(loc="best", fontsize="small")
    axes[0][0].set_ylabel("normalised score (mean ± std over seeds)")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def write_report(runs: list[RunResult], out_dir: Path) -> list[Cell]:
    """reports/results.md, results.csv and curves.png from `runs`; returns the table cells."""
    cells = aggregate(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("results.md", to_markdown(cells)), ("results.csv", to_csv(cells))):
        with atomic_path(out_dir / name, suffix=Path(name).suffix) as tmp:
            tmp.write_text(text)
    plot_curves(runs, out_dir / "curves.png")
    return cells
