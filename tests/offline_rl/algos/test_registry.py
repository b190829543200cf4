"""The registry's action kinds: every algorithm takes Box or Discrete actions, and one of the
other kind is refused in one line naming train.algo, the file and its action space."""

from __future__ import annotations

import pytest

from core.config import ConfigError
from offline_rl.algos.registry import ALGORITHMS, algorithm_names, check_action_space
from tests.offline_rl.algos.discrete_data import discrete_meta
from transitions.metadata import TransitionsMeta

BOX = ["awac", "bc", "cql", "dt", "iql", "rebrac", "td3_bc"]
DISCRETE = ["discrete_bc", "discrete_cql", "discrete_iql"]


def box_meta() -> TransitionsMeta:
    base = discrete_meta(11, 3, rows=10, env_id="Hopper-v5")
    return TransitionsMeta.from_dict(
        {
            **base.to_dict(),
            "num_actions": 0,
            "action_low": [-1.0] * 3,
            "action_high": [1.0] * 3,
        }
    )


def test_every_algorithm_has_one_action_kind() -> None:
    assert algorithm_names(discrete_actions=False) == BOX
    assert algorithm_names(discrete_actions=True) == DISCRETE
    assert sorted(BOX + DISCRETE) == sorted(ALGORITHMS)


@pytest.mark.parametrize("name", BOX)
def test_a_box_algorithm_on_discrete_actions_names_key_file_and_space(name: str) -> None:
    meta = discrete_meta(4, 2, rows=10)
    with pytest.raises(ConfigError) as error:
        check_action_space(name, meta, "data/transitions/cartpole.h5")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"train.algo: {name} needs Box actions")
    assert "data/transitions/cartpole.h5 holds Discrete(2) actions" in message
    assert all(name in message for name in DISCRETE)  # what to choose instead
    check_action_space(name, box_meta(), "hopper.h5")  # its own kind passes


@pytest.mark.parametrize("name", DISCRETE)
def test_a_discrete_algorithm_on_box_actions_is_refused(name: str) -> None:
    with pytest.raises(
        ConfigError, match=rf"{name} needs Discrete actions, but hopper.h5 holds Box\(3,\)"
    ):
        check_action_space(name, box_meta(), "hopper.h5")
    check_action_space(name, discrete_meta(4, 2, rows=10), "cartpole.h5")
