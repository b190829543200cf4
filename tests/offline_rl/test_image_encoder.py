"""The CNN encoder (offline_rl/networks.py) that image observations get, and the uint8 rows the
offline buffer keeps for them: shapes for MiniGrid's 7x7 view and Nature DQN's 84x84, the 1/255
scaling done inside the network on the batch, and seeds that stack and split like the MLPs'."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from core.config import ConfigError
from offline_rl.actors import CategoricalActor
from offline_rl.algos.registry import ALGORITHMS, image_algorithms, make_algorithm
from offline_rl.buffer import ReplayBuffer
from offline_rl.networks import EnsembleImageEncoder, observation_mlp
from offline_rl.seeds import seed_slice, stack_seed_tensors
from offline_rl.storage import choose_storage
from tests.offline_rl.algos.discrete_data import in_memory_meta
from transitions.loader import Transitions
from transitions.metadata import TransitionsMeta
from transitions.spaces import ObservationLayout

MINIGRID = ObservationLayout(147, (("image", 147),), (7, 7, 3))


def test_encoder_shapes_small_and_nature_dqn_sized_images() -> None:
    small = EnsembleImageEncoder((7, 7, 3), members=2)
    out = small(torch.randint(0, 11, (2, 5, 147), dtype=torch.uint8))
    assert out.shape == (2, 5, small.features) and small.features == 64
    nature = EnsembleImageEncoder((84, 84, 4), members=1)
    assert nature(torch.zeros(1, 3, 84 * 84 * 4, dtype=torch.uint8)).shape == (1, 3, 3136)
    assert not nature.standardise and small.standardise


def test_uint8_rows_are_scaled_on_the_device_as_their_float_values() -> None:
    """The network takes the stored bytes; the same values as floats give the same outputs (the
    1/255 is the network's), and a vector layout is a plain MLP as before."""
    torch.manual_seed(0)
    net = observation_mlp(MINIGRID, 7, (32,), members=1)
    pixels = torch.randint(0, 256, (1, 4, 147), dtype=torch.uint8)
    assert torch.allclose(net(pixels), net(pixels.float()), atol=1e-6)
    nature = EnsembleImageEncoder((36, 36, 1), members=1)
    frame = torch.randint(0, 256, (1, 1, 36 * 36), dtype=torch.uint8)
    expected = nature.convs(frame.view(1, 1, 36, 36).float() / 255)
    assert torch.allclose(nature(frame), expected.reshape(1, 1, -1))
    assert (
        len(observation_mlp(11, 3, (8,), members=1))
        == len(observation_mlp(MINIGRID, 3, (8,), 1)) - 1
    )


def test_stacked_seeds_act_as_each_seed_alone() -> None:
    """Seed k of an S-seed actor (its parameters stacked as offline_rl/seeds.py stacks every
    network) gives seed k's own logits: the grouped convolutions keep members apart."""
    singles = []
    for seed in range(3):
        torch.manual_seed(seed)
        singles.append(CategoricalActor(MINIGRID, 7, (16,), seeds=1))
    stacked = CategoricalActor(MINIGRID, 7, (16,), seeds=3)
    state = {
        key: stack_seed_tensors([s.state_dict()[key] for s in singles])
        for key in singles[0].state_dict()
    }
    stacked.load_state_dict(state)
    obs = torch.randint(0, 11, (3, 6, 147), dtype=torch.uint8)
    logits = stacked.logits(obs)
    for k, single in enumerate(singles):
        assert torch.allclose(logits[k], single.logits(obs[k : k + 1])[0], atol=1e-5)
        assert torch.equal(
            seed_slice(state["net.0.convs.0.weight"], k, 3)[0],
            single.state_dict()["net.0.convs.0.weight"][0],
        )


def test_the_offline_buffer_keeps_image_rows_uint8() -> None:
    n = 10
    obs = torch.randint(0, 256, (n, 147), dtype=torch.uint8)
    meta = minigrid_meta(n)
    data = Transitions(
        observations=obs,
        actions=torch.arange(n, dtype=torch.float32) % 7,
        rewards=torch.ones(n),
        next_observations=obs.flip(0),
        dones=torch.zeros(n),
        meta=meta,
        next_actions=torch.zeros(n),
    )
    buffer = ReplayBuffer.from_transitions(data, seeds=[0, 1])
    assert buffer.rows.dtype == torch.float32 and buffer.rows.shape == (n, 4)  # no pixels in it
    batch = buffer.sample(5)
    assert batch.observations.dtype == torch.uint8 and batch.observations.shape == (2, 5, 147)
    rows = [int((obs == row).all(-1).nonzero()) for row in batch.observations[0]]
    assert torch.equal(batch.actions[0], torch.tensor(rows, dtype=torch.float32) % 7)
    assert torch.equal(batch.next_observations[0], obs.flip(0)[rows])
    chunk, count = next(buffer.in_order(seeds=2, chunk=4))
    assert count == 4 and torch.equal(chunk.observations[1], obs[:4])


def minigrid_meta(rows: int) -> TransitionsMeta:
    """The header of MiniGrid image rows built in memory (Discrete(7) actions, no transforms)."""
    return in_memory_meta(
        147,
        7,
        rows,
        env_id="MiniGrid-Empty-5x5-v0",
        dataset_ids=("minigrid/expert-v0",),
        action_low=(),
        action_high=(),
        num_actions=7,
        observation_keys=MINIGRID.keys,
        observation_image=(7, 7, 3),
    )


@pytest.mark.parametrize("name", image_algorithms())
def test_every_image_algorithm_steps_on_uint8_batches_of_two_seeds(name: str) -> None:
    _, model = ALGORITHMS[name]
    config = model.model_validate({"hidden": (16,)}).with_default_lr(1e-3)
    algo = make_algorithm(name, MINIGRID, 7, config, "cpu", [0, 1])
    n = 32
    obs = torch.randint(0, 11, (n, 147), dtype=torch.uint8)
    meta = minigrid_meta(n)
    data = Transitions(obs, torch.arange(n) % 7.0, torch.rand(n), obs, torch.zeros(n), meta)
    batch = ReplayBuffer.from_transitions(
        dataclasses.replace(data, next_actions=data.actions), seeds=[0, 1]
    ).sample(8)
    metrics = algo.update(batch)
    assert all(torch.isfinite(v).all() for v in metrics.values())
    assert algo.act(batch.observations).shape == (2, 8)


def test_image_observations_are_refused_where_there_is_no_image_path() -> None:
    assert image_algorithms() == ["discrete_bc", "discrete_cql", "discrete_iql"]
    with pytest.raises(ConfigError, match=r"train.algo: bc does not take image observations"):
        make_algorithm("bc", MINIGRID, 7, ALGORITHMS["bc"][1]().with_default_lr(1e-3), "cpu")
    meta = minigrid_meta(10)
    cpu = torch.device("cpu")
    with pytest.raises(ConfigError, match=r"train.storage: disk: .* uint8 images"):
        choose_storage("disk", meta, cpu, available=10**12)
    assert choose_storage("auto", meta, cpu, available=10**12) == "memory"
    with pytest.raises(ConfigError, match=r"only memory storage"):
        choose_storage("auto", meta, cpu, available=10)
