"""The fidelity report's acceptance checks and tables, on made-up numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import fidelity
from pipelines.fidelity import acceptance, read_preset, render_report

REPO = Path(__file__).resolve().parents[2]
MEDIUM = {"steps": 1_000_000, "episodes": 2000, "return_mean": 1500.0, "normalized_score": 46.7}


def test_checks_follow_the_issue_and_wait_for_their_numbers() -> None:
    assert acceptance({}, {"medium": MEDIUM}) == []  # nothing trained yet: pending, not failed
    scores = {
        "bc": {"medium": [50.0, 52.0], "medium-replay": [20.0, 24.0]},
        "td3_bc": {"medium-replay": [60.0, 70.0], "medium-expert": [79.0, 80.0]},
        "iql": {"medium-replay": [40.0, 43.0]},
    }
    checks = {c["check"]: c for c in acceptance(scores, {"medium": MEDIUM})}
    assert checks["BC on medium within 10 of the medium data's own score"]["passed"]  # 51 vs 46.7
    assert checks["td3_bc on medium-replay at least twice BC's"]["passed"]  # 65 >= 2 x 22
    assert not checks["iql on medium-replay at least twice BC's"]["passed"]  # 41.5 < 44
    assert not checks["td3_bc on medium-expert at least 80"]["passed"]  # 79.5


def test_report_puts_ours_beside_the_published_numbers() -> None:
    _, config = read_preset(REPO / "params/fidelity-hopper.yaml")
    scores = {"bc": {"medium": [50.0, 52.0]}}
    text = render_report(config, scores, {"medium": MEDIUM, "random": None}, [])
    assert "| bc | medium | 51.0 ± 1.0 | 2 |" in text
    assert "| medium | 1,000,000 | 2,000 | 1,500.0 | 46.7 |" in text
    assert "| random | - |" in text and "pending" in text


def test_every_experiment_sets_the_keys_another_experiment_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """dvc exp run leaves its -S changes in the workspace: BC after IQL must set IQL's reward
    scaling back to the preset's value, and experiments already made are skipped."""
    monkeypatch.chdir(REPO)
    commands: list[list[str]] = []
    monkeypatch.setattr(fidelity, "timed", lambda part, command: commands.append(command))
    monkeypatch.setattr(fidelity, "existing_experiments", lambda: {"fid-bc-medium"})
    monkeypatch.setattr(fidelity, "has_default_remote", lambda: False)  # nothing pushed
    fidelity.train()
    names = [c[c.index("-n") + 1] for c in commands]
    assert names[0] == "fid-bc-medium-replay" and names[-1] == "fid-iql-medium-expert"
    assert len(names) == 8  # 3 x 3, one made already

    def settings(command: list[str]) -> dict[str, str]:
        pairs = [command[i + 1] for i, arg in enumerate(command) if arg == "-S"]
        return dict(pair.split("=", 1) for pair in pairs)

    assert all(c[:5] == ["dvc", "exp", "run", "--temp", "--allow-missing"] for c in commands)
    first, last = settings(commands[0]), settings(commands[-1])
    assert first["preprocess.reward_normalization"] == "none"
    assert last["preprocess.reward_normalization"] == "return_range"
    assert (
        first["train.seeds"] == "[0, 1, 2]" and first["algos.iql.actor_lr_cosine_steps"] == "200000"
    )
