"""One logger for every stage: wandb (config, history, summary, videos) and DVC's files
(metrics JSON for `dvc metrics`, CSV curves for `dvc plots`) from the same calls."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field

from offline_rl.atomic import atomic_path, write_json
from offline_rl.config import StrictModel

log = logging.getLogger(__name__)


class WandbConfig(StrictModel):
    project: str = Field(default="offline-rl-pipeline", min_length=1)
    entity: str | None = None
    # "auto": online when wandb has credentials, offline otherwise (resolved by the stage entry).
    mode: Literal["auto", "online", "offline", "disabled"] = "auto"
    tags: tuple[str, ...] = ()
    log_video: bool = True


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
                reinit="finish_previous",
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

    @property
    def run_dir(self) -> Path | None:
        return None if self.run is None else Path(self.run.dir).parent

    def log(self, curve: str, step: int, metrics: dict[str, float]) -> None:
        """Append a row to `curve` (a DVC plot file) and the same values to wandb at `step`."""
        row = {"step": float(step), **metrics}
        rows = self.history[curve]
        rows[:] = [r for r in rows if r["step"] < step] + [row]
        self._write_curve(curve)
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
        rows = self.history[curve]
        fields = sorted({key for row in rows for key in row} - {"step"})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["step", *fields])
        writer.writeheader()
        for row in rows:
            writer.writerow({"step": int(row["step"]), **{k: row.get(k, "") for k in fields}})
        with atomic_path(self.curves[curve], suffix=".csv") as tmp:
            tmp.write_text(buffer.getvalue())

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
