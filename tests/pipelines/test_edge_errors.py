"""Inputs at the edges of what the pipeline supports fail at the stage's start, in one `error:` line
that names the key, the value and the file at fault, and leave nothing behind: a CUDA device on a
machine without one, a batch larger than the dataset, an environment whose spaces the code cannot
handle, a transitions file of another environment.

The stage entries run in this process (their `main` under `run_stage`, from a scratch directory):
the same code path as `python -m pipelines.<stage>` without a new interpreter per case;
tests/pipelines/test_bad_params.py and one case here run the real entry as a process."""

from __future__ import annotations

import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, Protocol

import pytest
import torch
import yaml

from core.config import ConfigError
from pipelines.stage import run_stage
from pipelines.validate import validate_params
from tests.pipelines.params_edit import REPO, with_changes
from tests.pipelines.stage_runner import stage_env

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
TRANSITIONS = Path("data/transitions/medium.h5")


@dataclass
class StageResult:
    code: int
    stderr: str

    @property
    def line(self) -> str:
        """The one line the stage printed; fails the test if it printed more or fewer."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, self.stderr
        return lines[0]


class RunStage(Protocol):
    def __call__(self, stage: str, changes: dict[str, Any], *args: str) -> StageResult: ...


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def run_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[RunStage]:
    """Run `pipelines.<stage>.main` under `run_stage` in tmp_path with the tiny params changed."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.delenv("OFFLINE_RL_DEBUG", raising=False)

    def run(stage: str, changes: dict[str, Any], *args: str) -> StageResult:
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_changes(changes)))
        monkeypatch.setattr(sys, "argv", [f"pipelines.{stage}", *args])
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            run_stage(import_module(f"pipelines.{stage}").main)
        return StageResult(int(exit_info.value.code or 0), capsys.readouterr().err)

    try:
        yield run
    finally:
        for number, handler in handlers.items():  # run_stage turns them into exceptions
            signal.signal(number, handler)


@pytest.fixture
def with_transitions(
    tmp_path: Path, random_transitions: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """tmp_path holding data/transitions/medium.h5: 600 rows of random Hopper-v5 episodes.

    Loading them fails the test: the checks must come first (were one to come after, a batch of
    ten million rows would grow this process until the kernel kills it, not fail a test)."""
    (tmp_path / TRANSITIONS).parent.mkdir(parents=True)
    shutil.copy(random_transitions, tmp_path / TRANSITIONS)

    def load_transitions(*args: object, **kwargs: object) -> None:
        raise AssertionError("train loaded the transitions before checking them")

    # The training rows in either storage (open_buffer), the held-out rows (load_transitions).
    for name in ("load_transitions", "open_buffer"):
        monkeypatch.setattr(import_module("pipelines.train"), name, load_transitions)
    return tmp_path


# ---- devices ----


@NO_CUDA
@pytest.mark.parametrize(
    ("stage", "key", "device", "args"),
    [
        ("train", "train.device", "cuda", ()),
        ("evaluate", "evaluate.device", "cuda:1", ()),
        ("behavior", "behavior.device", "cuda", ("--env", "hopper")),
    ],
)
def test_cuda_device_without_cuda_is_one_line_before_any_work(
    run_entry: RunStage, tmp_path: Path, stage: str, key: str, device: str, args: tuple[str, ...]
) -> None:
    result = run_entry(stage, {key: device}, *args)
    assert result.code == 2
    assert result.line.startswith(f"error: params.yaml: {key} = '{device}': CUDA is not available")
    assert "available here: auto, cpu" in result.line
    assert files_under(tmp_path) == ["params.yaml"]


@NO_CUDA
def test_validate_names_the_missing_device() -> None:
    with pytest.raises(ConfigError, match=r"evaluate\.device = 'cuda': CUDA is not available"):
        validate_params(with_changes({"evaluate.device": "cuda"}))
    validate_params(with_changes({"train.device": "auto", "evaluate.device": "cpu"}))


# ---- batch size and the dataset ----


def test_batch_larger_than_the_dataset_is_one_line_before_loading(
    run_entry: RunStage, with_transitions: Path
) -> None:
    result = run_entry("train", {"train.batch_size": 10_000_000})
    assert result.code == 2
    assert result.line == (
        "error: params.yaml: train.batch_size = 10000000: more than the 600 training rows of "
        f"{TRANSITIONS} (train.dataset: medium); use at most 600"
    )
    assert files_under(with_transitions) == ["data/transitions/medium.h5", "params.yaml"]


def test_batch_as_large_as_the_training_split_passes_the_check(with_transitions: Path) -> None:
    from pipelines.checks import check_training_data

    check_training_data("Hopper-v5", "medium", 600, with_transitions / TRANSITIONS)
    with pytest.raises(ConfigError, match="more than the 600 training rows"):
        check_training_data("Hopper-v5", "medium", 601, with_transitions / TRANSITIONS)


def test_transitions_of_another_env_are_refused(
    run_entry: RunStage, with_transitions: Path
) -> None:
    """Train takes its environment from the transitions file: a stale file of another task must
    not be trained and evaluated as if it were `env`'s."""
    result = run_entry("train", {"env": "Walker2d-v5"})
    assert result.code == 2
    assert result.line == (
        f"error: params.yaml: env = 'Walker2d-v5', but {TRANSITIONS} (train.dataset: medium) "
        "holds Hopper-v5 data; rerun preprocess for Walker2d-v5 (dvc repro) or set env: Hopper-v5"
    )
    assert files_under(with_transitions) == ["data/transitions/medium.h5", "params.yaml"]


def test_an_algorithm_of_the_other_action_kind_is_one_line_before_loading(
    run_entry: RunStage, with_transitions: Path
) -> None:
    """A Discrete-action algorithm on a file of Box actions (and the other way round: unit tests
    in tests/offline_rl/algos/test_registry.py) is refused naming train.algo, the file and its
    actions, before the rows are loaded."""
    result = run_entry("train", {"train.algo": "discrete_bc"})
    assert result.code == 2
    assert result.line.startswith(
        f"error: params.yaml: train.algo: discrete_bc needs Discrete actions, but {TRANSITIONS} "
        "holds Box(3,) actions; choose one of ['awac', 'bc', "
    )
    assert files_under(with_transitions) == ["data/transitions/medium.h5", "params.yaml"]


def test_the_real_train_entry_refuses_a_huge_batch(with_transitions: Path) -> None:
    """As a process, the way DVC runs it: exit 2, one line, in seconds, no memory blow-up."""
    (with_transitions / "params.yaml").write_text(
        yaml.safe_dump(with_changes({"train.batch_size": 10_000_000}))
    )
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.train"],
        cwd=with_transitions,
        env={**stage_env(REPO), "WANDB_MODE": "disabled"},
        capture_output=True,
        text=True,
        timeout=120,
        # Address space capped: a check that came too late fails this test with a MemoryError
        # instead of taking the machine's memory.
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30)),
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: params.yaml: train.batch_size = 10000000: more than the 600 training rows of "
        f"{TRANSITIONS} (train.dataset: medium); use at most 600"
    ]
    assert files_under(with_transitions) == ["data/transitions/medium.h5", "params.yaml"]


# ---- environments the code cannot handle ----

# transitions/spaces.py takes Box or Discrete actions and Box or Dict-of-Box observations
UNSUPPORTED = (
    "observation space: Discrete(16) observations are not supported "
    "(Box (d,), uint8 Box image (H, W, C), or Dict of them)"
)


def test_unsupported_env_in_collect_envs_fails_collect_before_any_work(
    run_entry: RunStage, tmp_path: Path
) -> None:
    changes = {"collect.envs": {"hopper": "Hopper-v5", "frozenlake": "FrozenLake-v1"}}
    result = run_entry("collect", changes, "--env", "frozenlake", "--kind", "random")
    assert result.code == 2
    assert result.line.startswith(
        f"error: params.yaml: collect.envs.frozenlake: 'FrozenLake-v1' {UNSUPPORTED}"
    )
    assert files_under(tmp_path) == ["params.yaml"]


def test_unsupported_env_fails_preprocess_before_any_work(
    run_entry: RunStage, tmp_path: Path
) -> None:
    changes = {"env": "FrozenLake-v1", "collect.envs": {"frozenlake": "FrozenLake-v1"}}
    result = run_entry("preprocess", changes)
    assert result.code == 2
    assert result.line.startswith(f"error: params.yaml: env: 'FrozenLake-v1' {UNSUPPORTED}")
    assert files_under(tmp_path) == ["params.yaml"]


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"env": "FrozenLake-v1"}, f"env: 'FrozenLake-v1' {UNSUPPORTED}"),
        (
            {"collect.envs": {"hopper": "Hopper-v5", "frozenlake": "FrozenLake-v1"}},
            f"collect.envs.frozenlake: 'FrozenLake-v1' {UNSUPPORTED}",
        ),
        ({"collect.envs": {"cartpole": "CartPole-v1"}, "env": "CartPole-v1"}, None),  # Discrete
        ({"collect.envs": {"pendulum": "Pendulum-v1"}, "env": "Pendulum-v1"}, None),  # Box: fine
    ],
)
def test_validate_names_the_unsupported_space(
    changes: dict[str, Any], fragment: str | None
) -> None:
    if fragment is None:
        validate_params(with_changes(changes))
        return
    with pytest.raises(ConfigError) as error:
        validate_params(with_changes(changes))
    assert fragment in str(error.value)


# ---- run_stage: the pipeline's errors are one line, bugs keep their traceback ----

SCRIPT = """
import sys
from core.errors import PipelineError
from pipelines.stage import run_stage

def main():
    if sys.argv[1] == "input":
        raise PipelineError("data/x.h5: truncated")
    import torch
    torch.zeros(2, 3) @ torch.zeros(2, 3)  # a shape bug

run_stage(main)
"""


def run_script(kind: str) -> subprocess.CompletedProcess[str]:
    env = {**stage_env(REPO), "WANDB_MODE": "disabled"}
    env.pop("OFFLINE_RL_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, kind], env=env, capture_output=True, text=True, timeout=120
    )


def test_run_stage_prints_a_pipeline_error_as_one_line() -> None:
    result = run_script("input")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: data/x.h5: truncated"]


def test_run_stage_keeps_the_traceback_of_a_bug() -> None:
    result = run_script("bug")
    assert result.returncode == 1, result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert "RuntimeError: mat1 and mat2 shapes cannot be multiplied" in result.stderr
    assert not result.stderr.startswith("error:")


@pytest.mark.parametrize("bug", [RuntimeError, ValueError, KeyError, FileNotFoundError])
def test_run_stage_lets_other_exceptions_through(bug: type[Exception]) -> None:
    """Before, every ValueError, RuntimeError and FileNotFoundError became one line."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def main() -> None:
        raise bug("a bug")

    try:
        with pytest.raises(bug):
            run_stage(main)
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
