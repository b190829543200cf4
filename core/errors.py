"""The base of every error the pipeline expects and explains: not a bug, but a problem the user can
fix from the message alone (a params key, an input file, a dataset, a checkpoint, a command the stage
ran). `pipelines.stage.run_stage` prints these as one `error:` line; any other exception is a bug
and keeps its traceback."""

from __future__ import annotations


class PipelineError(Exception):
    """An expected failure; the message names what is at fault (key, value, file) and what to do."""


class CommandFailed(PipelineError, RuntimeError):
    """A command a stage ran (dvc, git) failed; the message, or the output above it, says why."""
