"""Typed configuration shared by every package: a strict pydantic base and the error it raises,
with messages that name the key, the value and what is allowed."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import PipelineError


class ConfigError(PipelineError, ValueError):
    """A params section failed validation; the message names the key, the value and what is allowed."""


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


ModelT = TypeVar("ModelT", bound=StrictModel)


def _submodel(annotation: Any, key: int | str) -> type[BaseModel] | None:
    """The model nested under field type `annotation` (directly or as a dict's values)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is dict and isinstance(key, str):
        args = get_args(annotation)
        value = args[1] if len(args) == 2 else None
        if isinstance(value, type) and issubclass(value, BaseModel):
            return value
    return None


def _known_keys(model: type[BaseModel], location: tuple[int | str, ...]) -> list[str]:
    """Field names allowed at `location` (a pydantic error path) inside `model`."""
    current: type[BaseModel] | None = model
    parts = list(location[:-1])
    while parts:
        part = parts.pop(0)
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return []
        annotation = current.model_fields[part].annotation
        if get_origin(annotation) is dict and parts:  # dict of models: skip the entry's name
            current = _submodel(annotation, parts.pop(0))
        else:
            current = _submodel(annotation, part)
    return list(current.model_fields) if current is not None else []


def format_validation_error(
    error: ValidationError, model: type[BaseModel], section: str, source: str
) -> str:
    """One line per problem: `source: section.key = value: reason (did you mean ...)`."""
    lines: list[str] = []
    for problem in error.errors():
        location = tuple(problem["loc"])
        if problem["type"] != "extra_forbidden":  # an unknown key is the user's: keep it as given
            location = tuple(p for p in location if not _is_union_tag(p))
        key = ".".join(str(part) for part in (section, *location) if part != "")
        value = problem.get("input")
        reason = problem["msg"]
        if problem["type"] == "extra_forbidden":
            allowed = _known_keys(model, location)
            close = difflib.get_close_matches(str(location[-1]), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            reason = f"unknown key{hint}; allowed keys: {', '.join(sorted(allowed))}"
            lines.append(f"{source}: {key}: {reason}")
            continue
        if problem["type"] == "literal_error" and isinstance(value, str):
            choices = re.findall(r"'([^']*)'", str(problem.get("ctx", {}).get("expected", "")))
            close = difflib.get_close_matches(value, choices, n=1)
            reason += f" (did you mean '{close[0]}'?)" if close else ""
        if not location:  # a check across fields: the value is the whole section
            lines.append(f"{source}: {key}: {reason}")
            continue
        lines.append(f"{source}: {key} = {_short(value)}: {reason}")
    return "\n".join(dict.fromkeys(lines))  # a union reports one line per member: keep each once


def _is_union_tag(part: int | str) -> bool:
    """pydantic names the member of a union that failed ("literal['a','b']", "dict[str,int]")."""
    return isinstance(part, str) and re.fullmatch(r"[\w-]+\[.*\]", part) is not None


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def parse_config(
    model: type[ModelT], data: Mapping[str, Any] | None, section: str, source: str = "params.yaml"
) -> ModelT:
    """Validate `data` into `model`, turning pydantic's error into a ConfigError naming each key."""
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {section} must be a mapping of keys to values, got {data!r}")
    try:
        return model.model_validate(dict(data or {}))
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, model, section, source)) from None


def choice_error(kind: str, value: str, allowed: Iterable[str]) -> str:
    """Message for a value outside a fixed set of names, with the nearest allowed name."""
    names = sorted(allowed)
    close = difflib.get_close_matches(value, names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown {kind} {value!r}{hint}; allowed: {', '.join(names)}"
