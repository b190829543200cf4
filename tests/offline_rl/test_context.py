"""Acting with history: the window a sequence model acts from at each step of an episode is the
window it trained on for that step (offline_rl/windows.py), save the action it is choosing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from offline_rl.context import ContextActor
from offline_rl.windows import WindowBuffer
from tests.offline_rl.test_windows import ACT_DIM, OBS_DIM, transitions
from transitions.loader import WindowBatch


@pytest.mark.parametrize("context", [1, 4, 9])
def test_the_acting_window_is_the_training_window(context: int) -> None:
    lengths = [7, 7, 7]  # one length: every episode's return is the one target
    data = transitions(lengths)
    buffer = WindowBuffer(data, context)
    seen: list[WindowBatch] = []
    row = 0

    def act(window: WindowBatch) -> torch.Tensor:
        seen.append(WindowBatch(*(t.clone() for t in vars(window).values())))
        return data.actions[row].view(1, 1, ACT_DIM)  # the data's action, as if the model chose it

    # One environment replays the episodes; the target is the episodes' return in the data.
    assert data.returns_to_go is not None
    target = float(data.returns_to_go[0])
    actor = ContextActor(act, 1, context, OBS_DIM, ACT_DIM, target, 1.0, torch.device("cpu"))
    actor.start(1)
    for length in lengths:
        for step in range(length):
            actor(data.observations[row].view(1, 1, -1))
            done = step == length - 1
            actor.observe(data.rewards[row].numpy()[None], np.array([done]))
            trained = buffer.windows(torch.tensor([[row]]))
            acting = seen[-1]
            assert torch.equal(acting.mask, trained.mask)
            assert torch.equal(acting.timesteps, trained.timesteps)
            assert torch.equal(acting.observations, trained.observations)
            torch.testing.assert_close(acting.returns_to_go, trained.returns_to_go)
            # every action but the one being chosen (unknown when acting; never read for it)
            assert torch.equal(acting.actions[..., :-1, :], trained.actions[..., :-1, :])
            assert not acting.actions[..., -1, :].any()
            row += 1


def test_windows_are_kept_per_environment_and_seed() -> None:
    """Two seeds x two environments: an episode that ends starts afresh, the others go on."""
    calls: list[WindowBatch] = []

    def act(window: WindowBatch) -> torch.Tensor:
        calls.append(WindowBatch(*(t.clone() for t in vars(window).values())))
        return torch.zeros(2, 2, ACT_DIM)

    actor = ContextActor(act, 2, 3, 3, ACT_DIM, 10.0, 2.0, torch.device("cpu"), max_timestep=2)
    actor.start(4)
    for _ in range(3):
        actor(torch.ones(2, 2, 3))
        actor.observe(np.array([1.0, 1.0, 1.0, 1.0]), np.array([False, True, False, False]))
    last = calls[-1]
    # environment (seed 0, env 1) ended its episode at every step: a one-step window each time
    assert last.mask[0, 1].tolist() == [False, False, True]
    assert last.returns_to_go[0, 1, -1] == 10.0
    # the others are at their third step: return to go 10 - 2 * 2 * 1, timesteps clamped at 1
    assert last.mask[1, 0].tolist() == [True, True, True]
    assert last.returns_to_go[1, 0].tolist() == [10.0, 8.0, 6.0]
    assert last.timesteps[1, 0].tolist() == [0, 1, 1]
