"""dvc.yaml's deps cover the code each stage runs: every project module a stage's command imports,
directly or through other project modules (imports inside functions too), is a dep of the stage
or lies in a folder that is. Editing such a module must make the stage's outputs stale, or DVC
would keep datasets and models that the code no longer makes. Over-covering is allowed.

A package `__init__.py` that holds nothing but its docstring runs no code and is left out; one
that gains a statement must be covered like any other module.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def module_file(name: str, root: Path = REPO) -> Path | None:
    """The project file of module `name`, or None when it is not one of the project's."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path, name: str) -> set[str]:
    """Every module `path` (module `name`) imports, anywhere in it, absolute names."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            # `from package import module` imports that module too
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def with_parents(name: str) -> list[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py first."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def runs_code(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    docstring = body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    return path.name != "__init__.py" or len(body) > (1 if docstring else 0)


def import_closure(module: str, root: Path = REPO) -> set[str]:
    """Project files (relative to `root`) that running `python -m module` imports."""
    files: set[str] = set()
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        for part in with_parents(name):
            if part in seen:
                continue
            seen.add(part)
            path = module_file(part, root)
            if path is None:
                continue
            if runs_code(path):
                files.add(path.relative_to(root).as_posix())
            todo.extend(imported_modules(path, part))
    return files


def stage_commands() -> dict[str, tuple[str, list[str]]]:
    """Each stage of dvc.yaml: the module its command runs and its deps (templated ones, such as
    models/behavior/${key}, name data, not code, and are left out)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)  # foreach stages keep their definition under `do`
        match = re.search(r"python -m ([\w.]+)", body["cmd"])
        assert match, f"{name}: its command is not `python -m <module>`"
        deps = [str(d) for d in body.get("deps", []) if "${" not in str(d)]
        out[name] = (match.group(1), deps)
    return out


STAGES = stage_commands()


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_module_a_stage_imports_is_a_dep(stage: str) -> None:
    module, deps = STAGES[stage]
    missing = sorted(
        path
        for path in import_closure(module)
        if not any(path == dep or path.startswith(f"{dep.rstrip('/')}/") for dep in deps)
    )
    assert not missing, (
        f"dvc.yaml: stage {stage} ({module}) imports files it does not depend on: {missing}"
    )


def test_the_closure_follows_every_kind_of_import(tmp_path: Path) -> None:
    """Imports inside functions, relative imports, `from package import module`, and the
    packages' __init__.py files that run code (not those that hold only a docstring)."""
    files = {
        "pkg/__init__.py": '"""Only a docstring."""\n',
        "pkg/a.py": "def f() -> None:\n    from pkg import b\n",
        "pkg/b.py": "from .sub.c import x\n",
        "pkg/sub/__init__.py": "import os\n",
        "pkg/sub/c.py": "x = 1\n",
        "pkg/unused.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert import_closure("pkg.a", tmp_path) == {
        "pkg/a.py",
        "pkg/b.py",
        "pkg/sub/__init__.py",
        "pkg/sub/c.py",
    }


def test_the_data_stages_do_not_import_the_algorithms() -> None:
    """The params schema imports the algorithms' config models, not the algorithms: editing an
    algorithm must not make behaviour training or the datasets stale."""
    for module in ("pipelines.behavior", "pipelines.collect", "pipelines.preprocess"):
        assert "offline_rl/algos/td3_bc.py" not in import_closure(module)
    assert "offline_rl/algos/td3_bc.py" in import_closure("pipelines.train")
