"""The one error every source raises: a single line naming the source and what to do about it."""

from __future__ import annotations

from core.errors import PipelineError


class SourceError(PipelineError, ValueError):
    """A dataset source could not be fetched, verified or converted.

    A PipelineError, so that `pipelines.stage.run_stage` prints it as one `error: ...` line.
    """
