"""The window sampler: a window is consecutive steps of one episode ending at the drawn row, padded
(mask False, zeros, timestep 0) where the episode starts inside it; never a step of another
episode. Checked over random episode boundaries."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from offline_rl.windows import WindowBuffer, episode_starts
from tests.offline_rl.algos.discrete_data import in_memory_meta
from transitions.loader import Transitions

OBS_DIM, ACT_DIM = 3, 2


def transitions(lengths: list[int]) -> Transitions:
    """Episodes of `lengths` steps whose observations say (row, episode, step in episode)."""
    episode_ids = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    rows = len(episode_ids)
    starts = np.cumsum([0, *lengths[:-1]])
    step = torch.arange(rows) - torch.from_numpy(np.repeat(starts, lengths))
    observations = torch.stack([torch.arange(rows), episode_ids, step], dim=1).float()
    actions = torch.stack([torch.arange(rows).float() / rows, -step.float() / 1000], dim=1)
    meta = in_memory_meta(OBS_DIM, ACT_DIM, rows, num_episodes=len(lengths))
    rewards = torch.full((rows,), 0.5)
    steps_left = torch.from_numpy(np.repeat(np.cumsum(lengths), lengths)) - torch.arange(rows)
    return Transitions(
        observations=observations,
        actions=actions,
        rewards=rewards,
        next_observations=observations,
        dones=torch.zeros(rows),
        meta=meta,
        returns_to_go=0.5 * steps_left.float(),  # the sum of the rewards to the episode's end
        episode_ids=episode_ids,
    )


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=8),
    context=st.integers(1, 9),
    seed=st.integers(0, 2**31),
)
def test_windows_stay_in_their_episode_and_pad_its_start(
    lengths: list[int], context: int, seed: int
) -> None:
    data = transitions(lengths)
    assert data.returns_to_go is not None
    buffer = WindowBuffer(data, context, seeds=[seed])
    batch = buffer.sample(32)
    assert batch.observations.shape == (1, 32, context, OBS_DIM)
    assert batch.actions.shape == (1, 32, context, ACT_DIM)
    for b in range(32):
        obs, mask = batch.observations[0, b], batch.mask[0, b]
        end_row, episode, end_step = (int(v) for v in obs[-1])
        assert mask[-1] and int(batch.timesteps[0, b, -1]) == end_step
        padding = max(0, context - 1 - end_step)
        assert mask.tolist() == [False] * padding + [True] * (context - padding)
        real = obs[padding:]
        # consecutive rows of the end row's episode, in order, with their own steps
        assert real[:, 0].tolist() == list(range(end_row - len(real) + 1, end_row + 1))
        assert (real[:, 1] == episode).all()
        assert batch.timesteps[0, b, padding:].tolist() == real[:, 2].long().tolist()
        torch.testing.assert_close(batch.actions[0, b, padding:], data.actions[real[:, 0].long()])
        torch.testing.assert_close(
            batch.returns_to_go[0, b, padding:], data.returns_to_go[real[:, 0].long()]
        )
        # padding is zeros at timestep 0
        assert not obs[:padding].any() and not batch.actions[0, b, :padding].any()
        assert not batch.returns_to_go[0, b, :padding].any()
        assert not batch.timesteps[0, b, :padding].any()


def test_episode_starts() -> None:
    ids = torch.tensor([0, 0, 0, 1, 2, 2, 5, 5])
    assert episode_starts(ids).tolist() == [0, 0, 0, 3, 4, 4, 6, 6]


def test_a_seed_draws_the_same_windows_beside_other_seeds() -> None:
    data = transitions([5, 9, 3, 7])
    alone = WindowBuffer(data, 4, seeds=[5]).sample(16)
    together = WindowBuffer(data, 4, seeds=[11, 5, 0]).sample(16)
    assert torch.equal(together.observations[1], alone.observations[0])
    assert torch.equal(together.mask[1], alone.mask[0])


def test_in_order_gives_every_row_as_a_window_end_once() -> None:
    data = transitions([5, 9, 3, 7])
    ends = []
    for batch, rows in WindowBuffer(data, 4).in_order(seeds=2, chunk=6):
        assert batch.observations.shape[:3] == (2, rows, 4)
        assert torch.equal(batch.observations[0], batch.observations[1])
        ends += batch.observations[0, :, -1, 0].long().tolist()
    assert ends == list(range(len(data)))


def test_the_sampler_state_replays_the_same_windows() -> None:
    buffer = WindowBuffer(transitions([6, 6, 6]), 3, seeds=[0, 1])
    state = buffer.sampler_state()
    first = buffer.sample(8)
    buffer.set_sampler_state(state)
    assert torch.equal(buffer.sample(8).observations, first.observations)
