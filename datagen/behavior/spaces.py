"""An environment's action and observation layouts (transitions/spaces.py decides what is
supported), read once where a stage starts, so an unsupported space fails before any work with one
line naming the environment and the space."""

from __future__ import annotations

from core.envs import make_env
from transitions.spaces import ActionLayout, ObservationLayout, action_layout, observation_layout


def env_layouts(env_id: str) -> tuple[ActionLayout, ObservationLayout]:
    env = make_env(env_id)
    try:
        return (
            action_layout(env.action_space, f"{env_id} action space"),
            observation_layout(env.observation_space, f"{env_id} observation space"),
        )
    finally:
        env.close()
