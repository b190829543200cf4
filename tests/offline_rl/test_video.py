"""No renderer: the video is skipped with a message that says what to set, and nothing crashes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import logging, sys
import numpy as np
from offline_rl.evaluation import record_video
logging.basicConfig(level=logging.WARNING)
path = record_video("Hopper-v5", lambda obs: np.zeros((1, 3)), sys.argv[1], seed=0)
print("result:", path)
"""


def render_in_child(
    script: str, out: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run `script`, given `out`, in a fresh interpreter: MuJoCo reads MUJOCO_GL once, at import."""
    return subprocess.run(
        [sys.executable, "-c", script, str(out)],
        env=env | {"PYTHONPATH": os.getcwd()},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_renderer_skips_the_video_with_a_clear_message(tmp_path: Path) -> None:
    out = tmp_path / "v.mp4"
    result = render_in_child(SCRIPT, out, {**os.environ, "MUJOCO_GL": "invalid"})
    assert result.returncode == 0, result.stderr
    assert "result: None" in result.stdout
    assert "video skipped" in result.stderr and "MUJOCO_GL=egl" in result.stderr
    assert not out.exists()


def test_minigrid_renders_at_its_own_frame_size(tmp_path: Path) -> None:
    """MiniGrid reads width/height as its grid's size (it asserts on them): its video is made
    without them, not skipped."""
    import numpy as np

    from offline_rl.evaluation import record_video

    out = tmp_path / "minigrid.mp4"
    forward = np.array([2])
    assert record_video("MiniGrid-Empty-5x5-v0", lambda obs: forward, out, seed=0, max_steps=5)
    assert out.stat().st_size > 0
