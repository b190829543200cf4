"""Typed configuration shared by every package: a strict pydantic base and the error it raises."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError


class ConfigError(ValueError):
    """A params section failed validation; the message names the key, the value and what is allowed."""


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


ModelT = TypeVar("ModelT", bound=StrictModel)


def _known_keys(model: type[BaseModel], location: tuple[int | str, ...]) -> list[str]:
    """Field names allowed at `location` (a pydantic error path) inside `model`."""
    current: type[BaseModel] | None = model
    for part in location[:-1]:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return []
        annotation = current.model_fields[part].annotation
        current = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
    return list(current.model_fields) if current is not None else []


def format_validation_error(
    error: ValidationError, model: type[BaseModel], section: str, source: str
) -> str:
    """One line per problem: `source: section.key = value: reason (did you mean ...)`."""
    lines = []
    for problem in error.errors():
        location = tuple(problem["loc"])
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
        lines.append(f"{source}: {key} = {value!r}: {reason}")
    return "\n".join(lines)


def parse_config(
    model: type[ModelT], data: Mapping[str, Any] | None, section: str, source: str = "params.yaml"
) -> ModelT:
    """Validate `data` into `model`, turning pydantic's error into a ConfigError naming each key."""
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
