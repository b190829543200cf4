"""The package graph of docs/architecture.md: imports point down only,
pipelines -> datagen -> offline_rl -> transitions -> core (analysis beside datagen, on core), so
nothing imports pipelines and core imports nothing of the project. Inside datagen, imports run
sources -> collection -> behavior, and preprocessing imports none of those."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# package -> the project packages it may import (besides itself)
ALLOWED = {
    "core": set(),
    "transitions": {"core"},
    "offline_rl": {"transitions", "core"},
    "datagen": {"offline_rl", "transitions", "core"},
    "analysis": {"core"},
    "pipelines": {"analysis", "datagen", "offline_rl", "transitions", "core"},
}
DATAGEN = {
    "behavior": set(),
    "collection": {"behavior"},
    "sources": {"collection", "behavior"},
    "preprocessing": set(),
}


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def files_of(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_down(package: str) -> None:
    wrong = {
        f"{path.relative_to(REPO)} imports {module}"
        for path in files_of(package)
        for module in imports_of(path)
        if (top := module.split(".")[0]) in ALLOWED
        and top != package
        and top not in ALLOWED[package]
    }
    assert not wrong, sorted(wrong)


def test_datagens_sub_packages_import_downward() -> None:
    wrong = set()
    for sub, allowed in DATAGEN.items():
        for path in files_of(f"datagen/{sub}"):
            for module in imports_of(path):
                parts = module.split(".")
                if parts[0] == "datagen" and len(parts) > 1 and parts[1] not in {sub, *allowed}:
                    wrong.add(f"{path.relative_to(REPO)} imports {module}")
    assert not wrong, sorted(wrong)
