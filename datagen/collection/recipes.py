"""Dataset kinds: which behaviour checkpoint fills each dataset, chosen by name or evaluated return,
and where a sampled dataset's episode seeds start."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

from datagen.collection.config import RecipeError


def checkpoint_returns(behavior_dir: Path) -> dict[str, float]:
    path = behavior_dir / "checkpoints.json"
    try:
        data = json.loads(path.read_text())
        return {str(k): float(v) for k, v in data["checkpoints"].items()}
    except FileNotFoundError:
        raise RecipeError(f"{path}: not found (run the behavior stage or dvc pull)") from None
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as error:
        raise RecipeError(
            f"{path}: not a behaviour checkpoint index ({type(error).__name__}: {error}); "
            "rerun the behavior stage"
        ) from None


def behavior_algo(behavior_dir: Path) -> str | None:
    """The behaviour learner that made the checkpoints (`SAC`, `DQN`, `waypoint`); None for an
    index written before it was recorded."""
    path = behavior_dir / "checkpoints.json"
    algo = json.loads(path.read_text()).get("algo") if path.exists() else None
    return None if algo is None else str(algo)


def choose_checkpoint(
    policy: str, returns: dict[str, float], medium_fraction: float, source: Path
) -> str:
    """Resolve `expert`/`medium`/`step_<N>` to a checkpoint name like `step_20000`.

    `medium` is D4RL's partially trained policy: of the checkpoints up to the expert's, the one
    whose evaluated return is closest to `medium_fraction` of the expert's (the earliest of
    equals). Not the first to reach that fraction: a behaviour return can leap past it between two
    checkpoints (a Hopper SAC went from 714 to 2,553 within 5,000 steps, docs/fidelity.md), and
    the first above the line would then be a near-expert."""
    if not returns:
        raise RecipeError(f"{source}: the behaviour stage saved no checkpoints")
    if policy.startswith("step_"):
        if policy not in returns:
            raise RecipeError(f"{source}: no checkpoint {policy!r}; have {sorted(returns)}")
        return policy
    ordered = sorted(returns, key=lambda name: int(name.split("_")[1]))
    expert = max(ordered, key=lambda name: returns[name])
    if policy == "expert":
        return expert
    if returns[expert] <= 0:
        # the best return is below a fraction of itself: no checkpoint can reach the threshold
        raise RecipeError(
            f"{source}: medium is the checkpoint closest to medium_fraction of the expert's "
            f"return, which is {returns[expert]:.2f} (not positive) at {expert}; train the "
            "behaviour policy longer (behavior.steps) or name a checkpoint (policy: step_<N>)"
        )
    target = medium_fraction * returns[expert]
    candidates = ordered[: ordered.index(expert) + 1]
    return min(candidates, key=lambda name: abs(returns[name] - target))  # min keeps the earliest


def dataset_seed_base(seed: int, policy: str) -> int:
    """Episode seeds of a sampled dataset start here; they depend on the policy, not the dataset's
    name, so medium-expert replays exactly the episodes of medium and expert."""
    slot = {"random": 0, "medium": 1, "expert": 2}.get(policy, 3 + zlib.crc32(policy.encode()) % 7)
    return seed * 1_000_000_000 + slot * 100_000_000


def checkpoint_for(policy: str, behavior_dir: Path, medium_fraction: float) -> tuple[Path, float]:
    """The behaviour checkpoint file `expert`/`medium`/`step_<N>` names in `behavior_dir`, and
    its evaluated return."""
    index = behavior_dir / "checkpoints.json"
    returns = checkpoint_returns(behavior_dir)
    name = choose_checkpoint(policy, returns, medium_fraction, index)
    return behavior_dir / f"{name}.pt", returns[name]


def check_behavior_env(behavior_dir: Path, env_id: str) -> Path:
    """The behaviour checkpoints in `behavior_dir` (one folder per environment) must have been
    trained on `env_id`."""
    path = behavior_dir / "checkpoints.json"
    if path.exists():
        trained = json.loads(path.read_text()).get("env_id")
        if trained != env_id:
            raise RecipeError(
                f"{path}: behaviour policies were trained on {trained!r}, not {env_id!r}; "
                "rerun this environment's behavior stage to train them"
            )
    return behavior_dir
