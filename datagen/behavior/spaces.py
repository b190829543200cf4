"""An environment's action and observation layouts (transitions/spaces.py decides what is
supported), read once where a stage starts, so an unsupported space fails before any work with one
line naming the environment and the space.

The spaces go in in Minari's JSON form: `transitions.spaces.space_dict` takes any Mapping as that
form already, and a gymnasium `Dict` space is a Mapping (of its subspaces)."""

from __future__ import annotations

import gymnasium as gym
from minari.serialization import serialize_space

from transitions.spaces import ActionLayout, ObservationLayout, action_layout, observation_layout


def env_layouts(env_id: str) -> tuple[ActionLayout, ObservationLayout]:
    env = gym.make(env_id)
    try:
        return (
            action_layout(
                serialize_space(env.action_space, to_string=False), f"{env_id} action space"
            ),
            observation_layout(
                serialize_space(env.observation_space, to_string=False),
                f"{env_id} observation space",
            ),
        )
    finally:
        env.close()
