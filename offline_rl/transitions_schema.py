"""Schema constants of the transitions file, importable without torch (preprocessing needs no torch).

The layout itself is documented in offline_rl/transitions.py.
"""

SCHEMA_VERSION = 2
ARRAY_KEYS = (
    "observations",
    "actions",
    "rewards",
    "next_observations",
    "terminals",
    "timeouts",
    "episode_ids",
    "returns_to_go",
    "validation",
)
