"""Checks every written dataset before the stage succeeds: a bad dataset fails with a clear line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from transitions.spaces import ActionLayout, ObservationLayout


class DatasetInvalid(ValueError):
    """A written dataset breaks an invariant that readers rely on.

    Not a PipelineError: the dataset was just written by this code, so this is a bug and keeps
    its traceback."""


def _observation_arrays(item: Any, layout: ObservationLayout) -> list[tuple[str, Any, int]]:
    """(name, array, width) of an episode's observations: one array, or one per Dict key."""
    if not layout.keys:
        return [("observations", item[()], layout.obs_dim)]
    if not isinstance(item, h5py.Group) or sorted(item) != sorted(layout.key_names):
        raise DatasetInvalid(f"{item.name}: observations must hold the keys {layout.key_names}")
    return [(f"observations/{key}", item[key][()], width) for key, width in layout.keys]


def _check_actions(actions: np.ndarray, n: int, layout: ActionLayout, where: str) -> None:
    if actions.shape != (n, *layout.row_shape):
        raise DatasetInvalid(f"{where}: actions of shape {actions.shape} for {n} steps")
    if layout.discrete:
        inside = (actions >= layout.start) & (actions < layout.start + layout.num_actions)
        if not np.issubdtype(actions.dtype, np.integer) or not inside.all():
            raise DatasetInvalid(f"{where}: actions must be integers in the Discrete space")
    elif not np.isfinite(actions).all():
        raise DatasetInvalid(f"{where}: actions holds NaN or inf")


def validate_dataset(
    path: Path,
    expected_steps: int,
    observation: ObservationLayout,
    action: ActionLayout,
    return_mean: float,
) -> None:
    """Shapes, dtypes, finiteness, one boundary per episode at its end, step count, returns."""
    data = Path(path) / "data" / "main_data.hdf5"
    steps, returns = 0, []
    with h5py.File(data, "r") as f:
        for name in f:
            ep = f[name]
            where = f"{data}:{name}"
            rewards = ep["rewards"][()]
            n = rewards.shape[0]
            term, trunc = ep["terminations"][()], ep["truncations"][()]
            for key, obs, width in _observation_arrays(ep["observations"], observation):
                row = observation.image or (width,)  # an image is stored (T + 1, H, W, C)
                if obs.shape != (n + 1, *row):
                    raise DatasetInvalid(f"{where}: {key} of shape {obs.shape} for {n} steps")
                if observation.image and obs.dtype != np.uint8:
                    raise DatasetInvalid(f"{where}: {key} is {obs.dtype}, images are uint8")
                if not np.isfinite(obs).all():
                    raise DatasetInvalid(f"{where}: {key} holds NaN or inf")
            _check_actions(ep["actions"][()], n, action, where)
            if term.dtype != np.bool_ or trunc.dtype != np.bool_:
                raise DatasetInvalid(f"{where}: terminations/truncations must be booleans")
            if not np.isfinite(rewards).all():
                raise DatasetInvalid(f"{where}: rewards holds NaN or inf")
            ends = term | trunc
            if ends[:-1].any() or not ends[-1] or (term[-1] and trunc[-1]):
                raise DatasetInvalid(f"{where}: an episode must end, once, at its last step")
            steps += n
            returns.append(float(rewards.sum()))
    if steps != expected_steps:
        raise DatasetInvalid(f"{data}: {steps} steps, expected {expected_steps}")
    if not np.isclose(np.mean(returns), return_mean, rtol=1e-6, atol=1e-6):
        raise DatasetInvalid(f"{data}: mean return {np.mean(returns)} != recorded {return_mean}")
