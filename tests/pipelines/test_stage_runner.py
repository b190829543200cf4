"""The repository copy the pipeline tests run in looks like a fresh clone with this checkout's code:
what a `make repro` or `dvc exp run` left in the workspace (outputs, a changed dvc.lock, the report
snapshot) stays behind, uncommitted code comes along."""

from __future__ import annotations

from pathlib import Path

from tests.pipelines.stage_runner import copy_repo, git_commit_all, sh

DVC_YAML = """\
stages:
  make:
    cmd: python make.py
    deps: [pkg/mod.py]
    outs: [out/data]
    metrics:
      - metrics/m.json:
          cache: false
"""
COMMITTED_LOCK = "schema: '2.0'\nstages: {}\n"
RUN_LOCK = """\
schema: '2.0'
stages:
  make:
    cmd: python make.py
    outs:
    - path: out/data
      hash: md5
      md5: 0123456789abcdef0123456789abcdef.dir
"""


def test_copy_keeps_code_changes_and_drops_what_the_pipeline_wrote(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "pkg").mkdir(parents=True)
    (source / "reports").mkdir()
    sh(["git", "init", "-q"], source)
    sh(["dvc", "init", "-q"], source)
    (source / "dvc.yaml").write_text(DVC_YAML)
    (source / "dvc.lock").write_text(COMMITTED_LOCK)
    (source / "params.yaml").write_text("seed: 0\n")
    (source / "reports/experiments.json").write_text('{"runs": []}\n')
    (source / "pkg/mod.py").write_text("VALUE = 1\n")
    git_commit_all(source, "clean")

    # What a run of the pipeline leaves (as `dvc repro` would, files DVC writes included) ...
    (source / "dvc.lock").write_text(RUN_LOCK)
    (source / "out/data").mkdir(parents=True)
    (source / "out/data/rows.bin").write_bytes(b"\0" * 8)
    (source / "out/.gitignore").write_text("/data\n")
    (source / "metrics").mkdir()
    (source / "metrics/m.json").write_text('{"score": 1}\n')
    (source / "reports/experiments.json").write_text('{"runs": ["exp-1"]}\n')
    # ... and a developer's uncommitted work.
    (source / "pkg/mod.py").write_text("VALUE = 2\n")
    (source / "pkg/new.py").write_text("NEW = True\n")
    params = tmp_path / "tiny.yaml"
    params.write_text("seed: 7\n")

    copy = copy_repo(tmp_path / "copy", params, source=source)

    assert (copy / "dvc.lock").read_text() == COMMITTED_LOCK
    assert (copy / "reports/experiments.json").read_text() == '{"runs": []}\n'
    assert not (copy / "out").exists()
    assert not (copy / "metrics").exists()
    assert (copy / "pkg/mod.py").read_text() == "VALUE = 2\n"
    assert (copy / "pkg/new.py").read_text() == "NEW = True\n"
    assert (copy / "params.yaml").read_text() == "seed: 7\n"
    assert sh(["git", "status", "--porcelain"], copy).strip() == ""  # all committed


def test_copy_leaves_out_a_lock_head_does_not_have(tmp_path: Path) -> None:
    """This repository commits no dvc.lock: the one `make repro` writes must not come along."""
    source = tmp_path / "source"
    source.mkdir()
    sh(["git", "init", "-q"], source)
    sh(["dvc", "init", "-q"], source)
    (source / "dvc.yaml").write_text(DVC_YAML)
    git_commit_all(source, "no lock")
    (source / "dvc.lock").write_text(RUN_LOCK)
    params = tmp_path / "tiny.yaml"
    params.write_text("seed: 7\n")

    copy = copy_repo(tmp_path / "copy", params, source=source)

    assert not (copy / "dvc.lock").exists()
    assert (copy / "dvc.yaml").read_text() == DVC_YAML
