"""The install a fresh clone gets: pyproject.toml's pins and constraints.txt (`make lock`) agree,
so `make repro` / `make test` resolve without conflict to the set CI last passed with."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def installed_extras() -> list[str]:
    """The extras `make install` installs and `make lock` resolves: the Makefile's PROJECT."""
    match = re.search(r"^PROJECT := \.\[([\w,-]+)\]$", (ROOT / "Makefile").read_text(), re.M)
    assert match, "Makefile: no `PROJECT := .[extra,...]` line"
    return match[1].split(",")


def constraint_pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for number, line in enumerate((ROOT / "constraints.txt").read_text().splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;@]+)", line)
        assert match, f"constraints.txt:{number}: {line!r} is not `name==version`"
        pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in installed_extras():
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def test_every_installed_pin_of_pyproject_is_the_locked_version() -> None:
    pins = constraint_pins()
    stale = []
    for requirement in project_requirements():
        locked = pins.get(canonicalize_name(requirement.name))
        if locked is None or not requirement.specifier.contains(locked):
            stale.append(f"{requirement} (constraints.txt: {locked})")
    assert not stale, f"pyproject.toml and constraints.txt disagree, run `make lock`: {stale}"


def test_constraints_hold_no_local_build_labels() -> None:
    """torch's CPU wheel reports 2.13.0+cpu; pinning that label would refuse the CUDA build of the
    same release on a GPU machine."""
    labelled = [
        f"{name}=={version}" for name, version in constraint_pins().items() if version.local
    ]
    assert not labelled, f"constraints.txt pins local builds: {labelled}"
