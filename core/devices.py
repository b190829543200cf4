"""Devices: the `Device` field type of the config models, whether this machine has a device, and
the torch device a name resolves to. torch is imported only inside the functions that need it, so
validating params never loads it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, Field

from core.config import ConfigError

if TYPE_CHECKING:
    import torch


class _DeviceField:
    """Marks a field as a torch device name: the stage entries check that this machine has it."""


DEVICE_FIELD = _DeviceField()
# A torch device name: its form is checked here so a typo fails at validation, not deep inside
# torch; whether this machine has it is checked when a stage reads its section (`device_problem`),
# since params valid for a GPU machine are valid params on a laptop too.
Device = Annotated[str, Field(pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$"), DEVICE_FIELD]


def device_problem(name: str) -> str | None:
    """Why the device `name` (a valid `Device`) cannot be used on this machine; None when it can.

    `auto` always can: it takes a GPU when there is one and the CPU otherwise."""
    if name in ("auto", "cpu"):
        return None
    import torch  # here, not at the top: validating params must not need torch loaded

    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "no GPU visible"
            return f"CUDA is not available on this machine (torch {torch.__version__}, {build})"
        index, count = int(name.partition(":")[2] or 0), torch.cuda.device_count()
        if index >= count:
            return f"this machine has {count} CUDA device(s)"
    if name == "mps" and not torch.backends.mps.is_available():
        return "MPS (Apple GPU) is not available on this machine"
    return None


def available_devices() -> list[str]:
    """The device names this machine can use, for error messages."""
    import torch

    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if torch.backends.mps.is_available():
        names.append("mps")
    return names


def check_devices(config: BaseModel, section: str, source: str = "params.yaml") -> None:
    """Raise ConfigError naming the first `Device` field of `config` this machine lacks."""
    for name, field in type(config).model_fields.items():
        value = getattr(config, name)
        if DEVICE_FIELD in field.metadata and (problem := device_problem(value)) is not None:
            raise ConfigError(
                f"{source}: {section}.{name} = {value!r}: {problem}; available here: "
                f"{', '.join(available_devices())} (auto takes a GPU when there is one)"
            )


def resolve_device(name: str) -> torch.device:
    """The torch device of a `Device` name: `auto` takes CUDA when there is one, else the CPU."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
