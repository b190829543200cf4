"""Running a stage entry: logging, offscreen rendering, signals, and the pipeline's own errors
as one `error:` line (a bug keeps its traceback); and whether to draw progress bars."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable

from core.errors import PipelineError


def progress_enabled() -> bool:
    return not os.environ.get("CI") and sys.stderr.isatty()


class StageInterrupted(BaseException):
    """SIGINT or SIGTERM: unwinds like KeyboardInterrupt so temporary outputs are removed."""


def _interrupt(signum: int, frame: object) -> None:
    raise StageInterrupted(signal.Signals(signum).name)


def default_to_offscreen_rendering() -> None:
    """On a Linux machine without a display, MuJoCo renders (the evaluate stage's video) through
    EGL unless MUJOCO_GL says otherwise: without it, MuJoCo looks for a window system and a plain
    `dvc exp run` from an SSH shell would skip every video. A PYOPENGL_PLATFORM of osmesa is
    followed (MuJoCo refuses EGL beside it). Must run before mujoco is imported."""
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    platform = os.environ.get("PYOPENGL_PLATFORM") or "egl"
    if sys.platform.startswith("linux") and headless and platform in ("egl", "osmesa"):
        os.environ.setdefault("MUJOCO_GL", platform)


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage entry: the pipeline's own errors (`PipelineError`: bad params, bad or missing
    input files, checkpoints, a failed command) end in one clear `error:` line and exit code 2.
    Anything else is a bug (a shape error, a CUDA fault) and keeps its full traceback and Python's
    exit code 1; OFFLINE_RL_DEBUG=1 shows the traceback of a PipelineError too.

    SIGTERM (what `kill` and DVC send) is turned into an exception like SIGINT, so `atomic_path`
    and `atomic_dir` delete their temporaries; the last checkpoint stays for the rerun to resume.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    # PyOpenGL announces at INFO, whenever MuJoCo's renderer loads, that an optional speed-up
    # module is missing: noise before every stage's first line.
    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    default_to_offscreen_rendering()
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main()
    except PipelineError as error:
        if os.environ.get("OFFLINE_RL_DEBUG"):
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except StageInterrupted as signal_name:
        print(f"error: interrupted by {signal_name}; rerun to resume", file=sys.stderr)
        sys.exit(130)
