"""Preprocessing never loads torch: the transitions writer, its schema and header reader, the
preprocessing library and the preprocess stage need only numpy and h5py (its forked workers copy a
process without torch's thread pools and memory), and so does validating params (the schema is
built from torch-free config modules)."""

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
    "pipelines.preprocess",
    "pipelines.params",
    "pipelines.validate",
]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_module_imports_without_torch(module: str) -> None:
    code = f"import sys, {module}; sys.exit('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, f"importing {module} loads torch\n{result.stderr}"
