"""The download stage's config models (params.yaml `download`): which datasets to import and how
to retry, torch-free (pipelines/params.py builds the params schema from them)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from core.config import StrictModel

# Minari's namespace/name-vN with the namespace required: preprocess.datasets tells an imported id
# from a generated kind ("medium") by its "/".
DATASET_ID = r"^[-\w]+(?:/[-\w]+)+-v\d+$"


def _dataset_id(value: str) -> str:
    if not re.match(DATASET_ID, value):
        raise ValueError(
            "must look like namespace/name-vN, e.g. mujoco/hopper/medium-v0 (the namespace is what "
            "tells preprocess.datasets an imported id from a generated kind)"
        )
    return value


DatasetId = Annotated[str, AfterValidator(_dataset_id)]


class MinariSource(StrictModel):
    source: Literal["minari"]
    id: DatasetId  # e.g. mujoco/hopper/medium-v0
    remote: str | None = None  # e.g. hf://farama-minari; None is Minari's default


class D4RLSource(StrictModel):
    source: Literal["d4rl"]
    id: DatasetId  # the id it gets here, e.g. d4rl/hopper/medium-v2
    url: str | None = None  # http(s)://...
    path: str | None = None  # a local file
    sha256: str | None = None  # of the file, as `sha256sum FILE` prints it
    env: str | None = None  # gymnasium id whose spaces the file uses; None: the top-level env

    @field_validator("sha256")
    @classmethod
    def _hex(cls, digest: str | None) -> str | None:
        if digest is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            raise ValueError("must be 64 hexadecimal digits, as `sha256sum FILE` prints them")
        return digest

    @field_validator("url")
    @classmethod
    def _http(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^https?://", url):
            raise ValueError("must start with http:// or https:// (use path for a local file)")
        return url

    @model_validator(mode="after")
    def _one_location(self) -> D4RLSource:
        if (self.url is None) == (self.path is None):
            raise ValueError("give exactly one of url and path")
        return self


class FolderSource(StrictModel):
    source: Literal["folder"]
    path: str  # a Minari dataset folder (the one holding data/metadata.json)
    id: DatasetId | None = None  # None: the id in its metadata
    link: bool = False  # symlink instead of copying (the folder must outlive the pipeline)


Entry = Annotated[MinariSource | D4RLSource | FolderSource, Field(discriminator="source")]


class DownloadConfig(StrictModel):
    datasets: tuple[Entry, ...] = ()
    attempts: int = Field(default=5, ge=1, le=20)
    backoff_s: float = Field(default=1.0, ge=0)
    timeout_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _unique_ids(self) -> DownloadConfig:
        ids = [e.id for e in self.datasets if e.id is not None]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"dataset ids must be unique, repeated: {repeated}")
        return self
