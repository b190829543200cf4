"""The transitions file: flat HDF5 arrays of one or more datasets, plus statistics and transforms.

Layout (schema version 3; `transitions/spaces.py` says which spaces), every array chunked along the
first axis or contiguous (`writer.py`):
    observations, next_observations  float32 (N, obs_dim)   raw, as the environment emitted them; a
                                                            Dict observation as its declared keys'
                                                            boxes concatenated in order
                                     uint8   (N, H*W*C)     an image observation: its pixels in
                                                            (H, W, C) order, never converted
    actions                          float32 (N, act_dim)   Box actions: raw, in the env's bounds
                                     int64   (N,)           Discrete(n) actions: index 0..n-1, the
                                                            env's action minus `action_start`
    rewards                          float32 (N,)           raw
    terminals, timeouts              bool    (N,)           timeouts are truncations, not terminal
    episode_ids                      int64   (N,)           index of the episode in the file
    returns_to_go                    float32 (N,)           discounted sum of raw rewards to episode end
    validation                       bool    (N,)           True on held-out (validation) episodes
Attributes (`transitions.writer.Header`): schema_version, env_id, dataset_ids (JSON list),
ref_min_score, ref_max_score (NaN when unknown), ref_score_source, action_low, action_high (empty
for Discrete actions), num_actions (n of Discrete(n); 0 for a Box), action_start (the env's action of
index 0), observation_keys (JSON list of [key, width] of a Dict observation, in the order the columns
hold them; "[]" for a Box; an image's {"keys": [...], "image": [H, W, C]}), obs_mean,
obs_std (training episodes only), the transforms chosen at preprocess time (normalize_observations,
reward_scale, reward_shift), which `transitions.loader.load_transitions` applies on the training
device so the file itself stays raw and inspectable, return_to_go_discount, validation_fraction,
split_seed, num_episodes, num_validation_episodes and the training episodes' return statistics.

Schema 2 files (every file written before Discrete actions and Dict observations) lack
num_actions, action_start and observation_keys and read as Box actions and Box observations
(`READABLE_SCHEMA_VERSIONS`); the arrays are otherwise the same.

This module, the writer and the header reader need only numpy and h5py: preprocessing never loads
torch (tests/transitions/test_torch_free.py).
"""

from __future__ import annotations

import numpy as np

from transitions.spaces import ActionLayout

SCHEMA_VERSION = 3
READABLE_SCHEMA_VERSIONS = (2, 3)  # 2: Box actions and observations only, no space attributes


def array_specs(
    obs_dim: int, actions: ActionLayout, obs_dtype: type = np.float32
) -> dict[str, tuple[tuple[int, ...], type]]:
    """Per-row shape and dtype of every array of the file, in the file's order."""
    return {
        "observations": ((obs_dim,), obs_dtype),
        "actions": (actions.row_shape, actions.dtype),
        "rewards": ((), np.float32),
        "next_observations": ((obs_dim,), obs_dtype),
        "terminals": ((), bool),
        "timeouts": ((), bool),
        "episode_ids": ((), np.int64),
        "returns_to_go": ((), np.float32),
        "validation": ((), bool),
    }


ARRAY_KEYS = tuple(array_specs(1, ActionLayout(act_dim=1)))
# The arrays training reads of each row, in the order of its packed rows and batches.
ROW_ARRAYS = ("observations", "actions", "rewards", "next_observations", "terminals")
