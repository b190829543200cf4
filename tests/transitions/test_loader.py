from __future__ import annotations

from pathlib import Path

import torch

from datagen.preprocessing.config import PreprocessConfig
from datagen.preprocessing.preprocess import preprocess
from offline_rl.buffer import ReplayBuffer
from transitions.loader import load_transitions, shift_within_episodes
from transitions.metadata import Split, split_size


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


def test_split_size_counts_the_rows_each_split_loads(tmp_path: Path, random_dataset: Path) -> None:
    """train checks its batch size against split_size before loading: it must be the row count
    of the split load_transitions gives, validation episodes held out or not."""
    held_out = tmp_path / "held_out.h5"
    config = PreprocessConfig(chunk_rows=1000, validation_fraction=0.3)
    preprocess([("hopper/random-v0", random_dataset)], held_out, config)
    splits: tuple[Split, ...] = ("all", "train", "validation")
    sizes = {split: split_size(held_out, split) for split in splits}
    for split, size in sizes.items():
        assert size == len(load_transitions(held_out, split=split).rewards)
    assert sizes["train"] + sizes["validation"] == sizes["all"] == 600
    assert 0 < sizes["validation"] < 600
