"""One logger for every stage: wandb (config, history, summary, videos) and DVC's files
(metrics JSON for `dvc metrics`, CSV curves for `dvc plots`) from the same calls."""

from __future__ import annotations

import csv
import io
import logging
import statistics
from pathlib import Path
from typing import Any, Literal, Self

from core.atomic import atomic_path, write_json
from offline_rl.config import WandbConfig

log = logging.getLogger(__name__)


class RunLogger:
    """Logs scalars by step to wandb and to CSV curves; history survives resume via `history`."""

    def __init__(
        self,
        config: WandbConfig,
        *,
        mode: Literal["online", "offline", "disabled"],
        job_type: str,
        name: str | None,
        group: str | None,
        run_config: dict[str, Any],
        run_id: str | None,
        wandb_dir: Path,
        curves: dict[str, Path],
        extra_tags: list[str] | None = None,
    ) -> None:
        self.curves = curves
        self.log_videos = config.log_video
        self.history: dict[str, list[dict[str, float]]] = {name: [] for name in curves}
        self.run: Any = None
        if mode != "disabled":
            import wandb

            wandb_dir.mkdir(parents=True, exist_ok=True)
            self.run = wandb.init(
                project=config.project,
                entity=config.entity,
                mode=mode,
                job_type=job_type,
                name=name,
                group=group,
                tags=list(dict.fromkeys([*config.tags, *(extra_tags or [])])),
                config=run_config,
                id=run_id,
                resume="allow" if run_id else None,
                dir=str(wandb_dir),
                reinit="create_new",  # a multi-seed run holds one wandb run per seed at once
            )

    @classmethod
    def files_only(cls, curves: dict[str, Path], run_id: str | None = None) -> Self:
        """A logger that writes the CSV curves alone, wandb disabled (tests, benchmarks)."""
        return cls(
            WandbConfig(),
            mode="disabled",
            job_type="local",
            name=None,
            group=None,
            run_config={},
            run_id=run_id,
            wandb_dir=Path("."),  # unused while wandb is disabled
            curves=curves,
        )

    @property
    def run_id(self) -> str | None:
        return None if self.run is None else str(self.run.id)

    def log(self, curve: str, step: int, metrics: dict[str, float]) -> None:
        """Append a row to `curve` (a DVC plot file) and the same values to wandb at `step`."""
        row = {"step": float(step), **metrics}
        rows = self.history[curve]
        rows[:] = [r for r in rows if r["step"] < step] + [row]
        self._write_curve(curve)
        self.log_wandb(metrics, step)

    def log_wandb(self, metrics: dict[str, float], step: int) -> None:
        if self.run is not None:
            self.run.log(metrics, step=step)

    def restore(self, history: dict[str, list[dict[str, float]]], up_to_step: int) -> None:
        """Keep rows logged up to the resumed step; later ones are about to be redone."""
        for curve, rows in history.items():
            if curve in self.history:
                self.history[curve] = [r for r in rows if r["step"] <= up_to_step]
                self._write_curve(curve)

    def write_curves(self) -> None:
        """Write every curve file, one with no rows yet as a bare header (`step`): for a stage
        whose curve files are DVC outs each, which must exist even when nothing was logged to
        them (no episode ended within a short behaviour run)."""
        for curve in self.curves:
            self._write_curve(curve)

    def _write_curve(self, curve: str) -> None:
        write_curve(self.curves[curve], self.history[curve], ("step",))

    def log_video(self, key: str, path: Path, step: int) -> None:
        """Upload the video to wandb unless `wandb.log_video` is off (the file stays either way)."""
        if self.run is not None and self.log_videos:
            import wandb

            self.run.log({key: wandb.Video(str(path), format="mp4")}, step=step)

    def summary(self, metrics: dict[str, Any], metrics_file: Path | None = None) -> None:
        """Final numbers: wandb run summary and (optionally) a DVC metrics JSON."""
        if self.run is not None:
            self.run.summary.update(metrics)
        if metrics_file is not None:
            write_json(metrics_file, metrics)

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None


def write_curve(path: Path, rows: list[dict[str, float]], keys: tuple[str, ...]) -> None:
    """A CSV curve for `dvc plots`: the `keys` columns first (as integers), then every metric
    any row has, sorted; a metric a row lacks is left empty."""
    fields = sorted({key for row in rows for key in row} - set(keys))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*keys, *fields])
    writer.writeheader()
    for row in rows:
        writer.writerow({**{k: int(row[k]) for k in keys}, **{k: row.get(k, "") for k in fields}})
    with atomic_path(path, suffix=".csv") as tmp:
        tmp.write_text(buffer.getvalue())


class SeedsLogger:
    """The logger of a training run of S seeds: each seed's numbers go to its own wandb run
    (`runs`, one RunLogger each, all in the experiment's group), and every curve is one CSV in
    long form, a row per step and seed (`step`, `seed`, metrics...), which dvc.yaml's
    `seed_band` plots draw as the mean over seeds with a band of one standard deviation."""

    def __init__(
        self, seeds: tuple[int, ...], runs: list[RunLogger], curves: dict[str, Path]
    ) -> None:
        if len(runs) != len(seeds):
            raise ValueError(f"{len(runs)} wandb runs for {len(seeds)} seeds")
        self.seeds, self.runs, self.curves = seeds, runs, curves
        self.history: dict[str, list[dict[str, float]]] = {name: [] for name in curves}

    @classmethod
    def files_only(cls, seeds: tuple[int, ...], curves: dict[str, Path]) -> Self:
        return cls(seeds, [RunLogger.files_only({}) for _ in seeds], curves)

    @property
    def run_ids(self) -> list[str | None]:
        return [run.run_id for run in self.runs]

    def log(self, curve: str, step: int, per_seed: list[dict[str, float]]) -> None:
        """One row per seed at `step` (`per_seed[k]` is seed `seeds[k]`'s), replacing any rows of
        that step or later (a resumed run redoes them)."""
        rows = [r for r in self.history[curve] if r["step"] < step]
        for seed, metrics, run in zip(self.seeds, per_seed, self.runs, strict=True):
            rows.append({"step": float(step), "seed": float(seed), **metrics})
            run.log_wandb(metrics, step)
        self.history[curve] = rows
        self._write_curve(curve)

    def restore(self, history: dict[str, list[dict[str, float]]], up_to_step: int) -> None:
        for curve, rows in history.items():
            if curve in self.history:
                self.history[curve] = [r for r in rows if r["step"] <= up_to_step]
                self._write_curve(curve)

    def write_curves(self) -> None:
        for curve in self.curves:
            self._write_curve(curve)

    def _write_curve(self, curve: str) -> None:
        write_curve(self.curves[curve], self.history[curve], ("step", "seed"))

    def summary(self, per_seed: list[dict[str, Any]]) -> None:
        for run, metrics in zip(self.runs, per_seed, strict=True):
            run.summary(metrics)

    def finish(self, exit_code: int = 0) -> None:
        for run in self.runs:
            run.finish(exit_code)


def seeds_summary(seeds: tuple[int, ...], per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Every number's mean over seeds (under its own name) and its std over seeds
    (`<name>/seed_std`, population std as CORL reports), then each seed's own under `seeds`."""
    summary: dict[str, Any] = {}
    for key, value in per_seed[0].items():
        if isinstance(value, str):
            summary[key] = value
            continue
        values = [float(p[key]) for p in per_seed if key in p]
        summary[key] = statistics.fmean(values)
        if len(values) > 1:
            summary[f"{key}/seed_std"] = statistics.pstdev(values)
    summary["num_seeds"] = len(seeds)
    summary["seeds"] = {str(seed): values for seed, values in zip(seeds, per_seed, strict=True)}
    return summary
