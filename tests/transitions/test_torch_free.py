"""Preprocessing never loads torch: the transitions writer, its schema and header reader, and the
preprocessing library need only numpy and h5py (a fork of a process that holds torch's thread pools
is what the preprocess workers must not be), and so does validating params."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.pipelines.stage_runner import REPO

TORCH_FREE = [
    "transitions.schema",
    "transitions.writer",
    "transitions.metadata",
    "datagen.preprocessing.preprocess",
]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_module_imports_without_torch(module: str) -> None:
    code = f"import sys, {module}; sys.exit('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, f"importing {module} loads torch\n{result.stderr}"
