"""A stage run from a plain shell on a headless machine (`dvc exp run` over SSH, no MUJOCO_GL set)
still renders the evaluate stage's video; a renderer the user chose is left alone."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pipelines.stage import default_to_offscreen_rendering
from tests.offline_rl.test_video import render_in_child

# What the evaluate stage does, inside run_stage, as a stage entry runs it.
STAGE = """
import sys
import numpy as np
from pipelines.stage import run_stage
from offline_rl.evaluation import record_video

def main() -> None:
    path = record_video("Hopper-v5", lambda obs: np.zeros((1, 3)), sys.argv[1], seed=0, max_steps=20)
    print("result:", path)

run_stage(main)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="EGL is the Linux default")
def test_a_stage_renders_without_mujoco_gl_or_a_display(tmp_path: Path) -> None:
    hidden = {"MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"}
    out = tmp_path / "v.mp4"
    result = render_in_child(STAGE, out, {k: v for k, v in os.environ.items() if k not in hidden})
    assert result.returncode == 0, result.stderr
    assert "video skipped" not in result.stderr
    assert out.stat().st_size > 0


def test_the_default_yields_to_a_display_and_to_the_users_choice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    default_to_offscreen_rendering()
    assert os.environ["MUJOCO_GL"] == "osmesa"

    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.setenv("DISPLAY", ":0")
    default_to_offscreen_rendering()
    assert "MUJOCO_GL" not in os.environ

    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("PYOPENGL_PLATFORM", "osmesa")
    default_to_offscreen_rendering()
    assert os.environ["MUJOCO_GL"] == "osmesa"

    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.delenv("PYOPENGL_PLATFORM")
    default_to_offscreen_rendering()
    assert os.environ["MUJOCO_GL"] == "egl"
