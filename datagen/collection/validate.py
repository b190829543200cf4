"""Checks every written dataset before the stage succeeds: a bad dataset fails with a clear line."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np


class DatasetInvalid(ValueError):
    """A written dataset breaks an invariant that readers rely on.

    Not a PipelineError: the dataset was just written by this code, so this is a bug and keeps
    its traceback."""


def validate_dataset(
    path: Path, expected_steps: int, obs_dim: int, act_dim: int, return_mean: float
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
            obs, actions = ep["observations"][()], ep["actions"][()]
            term, trunc = ep["terminations"][()], ep["truncations"][()]
            if obs.shape != (n + 1, obs_dim) or actions.shape != (n, act_dim):
                raise DatasetInvalid(f"{where}: shapes {obs.shape}, {actions.shape} for {n} steps")
            if term.dtype != np.bool_ or trunc.dtype != np.bool_:
                raise DatasetInvalid(f"{where}: terminations/truncations must be booleans")
            for key, array in (("observations", obs), ("actions", actions), ("rewards", rewards)):
                if not np.isfinite(array).all():
                    raise DatasetInvalid(f"{where}: {key} holds NaN or inf")
            ends = term | trunc
            if ends[:-1].any() or not ends[-1] or (term[-1] and trunc[-1]):
                raise DatasetInvalid(f"{where}: an episode must end, once, at its last step")
            steps += n
            returns.append(float(rewards.sum()))
    if steps != expected_steps:
        raise DatasetInvalid(f"{data}: {steps} steps, expected {expected_steps}")
    if not np.isclose(np.mean(returns), return_mean, rtol=1e-6, atol=1e-6):
        raise DatasetInvalid(f"{data}: mean return {np.mean(returns)} != recorded {return_mean}")
