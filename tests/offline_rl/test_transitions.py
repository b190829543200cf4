from __future__ import annotations

from pathlib import Path

import torch

from offline_rl.buffer import ReplayBuffer
from offline_rl.transitions import load_transitions, shift_within_episodes


def test_next_actions_stay_inside_each_episode() -> None:
    actions = torch.arange(6, dtype=torch.float32).unsqueeze(-1)
    episode_ids = torch.tensor([0, 0, 0, 1, 1, 2])
    shifted = shift_within_episodes(actions, episode_ids)
    # Within an episode: the next row's action; at an episode's end: the row's own action.
    assert shifted.squeeze(-1).tolist() == [1.0, 2.0, 2.0, 4.0, 4.0, 5.0]


def test_sampled_next_actions_match_the_rows(random_transitions: Path) -> None:
    data = load_transitions(random_transitions)
    assert data.next_actions is not None
    batch = ReplayBuffer.from_transitions(data, seeds=[0]).sample(32)
    assert batch.next_actions is not None and batch.next_actions.shape == batch.actions.shape
