"""The behaviour SAC: its update gives each network its own loss's gradient, the same bits with
the critic's half on a side thread as in sequence, and the growing buffer is sampled over the
rows filled so far, also by updates replayed from a CUDA graph (that test is skipped without
CUDA)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from benchmarks.same_outputs import flatten, same
from datagen.behavior.config import BehaviorConfig, SACConfig
from datagen.behavior.run import BehaviorRun
from datagen.behavior.sac import SAC
from offline_rl.buffer import ReplayBuffer
from offline_rl.cuda_graph import GraphedTrainStep
from offline_rl.side_thread import one_intra_op_thread
from offline_rl.speed import Precision, accelerate
from transitions.loader import Batch

OBS, ACT = 5, 2
CPU = torch.device("cpu")


def batch(n: int = 64) -> Batch:
    """One seed's batch: fields (1, n, ...)."""
    g = torch.Generator().manual_seed(1)
    return Batch(
        torch.randn(1, n, OBS, generator=g),
        torch.rand(1, n, ACT, generator=g) * 2 - 1,
        torch.randn(1, n, generator=g),
        torch.randn(1, n, OBS, generator=g),
        (torch.rand(1, n, generator=g) < 0.1).float(),
    )


def separate_gradients(agent: SAC, data: Batch) -> dict[str, list[torch.Tensor]]:
    """Each loss differentiated alone at the same parameters, with the same random draws."""
    cfg = agent.config
    alpha = agent.log_alpha.exp().detach()
    with torch.no_grad():
        next_action, next_log_prob = agent.actor.sample(data.next_observations, agent.noise)
        next_q = agent.critic_target(data.next_observations, next_action).min(0).values
        target = data.rewards + cfg.discount * (1 - data.dones) * (next_q - alpha * next_log_prob)
    q = agent.critic(data.observations, data.actions)
    critic_loss = F.mse_loss(q, target.expand_as(q), reduction="none").mean(-1).sum()
    action, log_prob = agent.actor.sample(data.observations, agent.noise)
    actor_loss = (alpha * log_prob - agent.critic(data.observations, action).min(0).values).mean()
    alpha_loss = -(agent.log_alpha * (log_prob.detach() + agent.target_entropy)).mean()
    critic_params, actor_params = list(agent.critic.parameters()), list(agent.actor.parameters())
    return {
        "critic": list(torch.autograd.grad(critic_loss, critic_params)),
        "actor": list(torch.autograd.grad(actor_loss, actor_params)),
        "log_alpha": list(torch.autograd.grad(alpha_loss, [agent.log_alpha])),
    }


@pytest.mark.parametrize("side_thread", [False, True])
def test_update_gives_each_network_its_own_losss_gradient(side_thread: bool) -> None:
    torch.manual_seed(0)
    agent = SAC(OBS, ACT, SACConfig(hidden=(32, 32)), CPU, side_thread=side_thread)
    data = batch()
    noise = agent.noise.state_dict()
    expected = separate_gradients(agent, data)
    seen: dict[str, list[torch.Tensor]] = {}

    def capture() -> None:  # in place of the optimiser step: the gradients as the update left them
        seen["critic"] = [p.grad.clone() for p in agent.critic.parameters()]  # type: ignore[union-attr]
        seen["actor"] = [p.grad.clone() for p in agent.actor.parameters()]  # type: ignore[union-attr]
        seen["log_alpha"] = [agent.log_alpha.grad.clone()]  # type: ignore[union-attr]

    agent.optimizer.step = capture  # type: ignore[method-assign,assignment]
    agent.noise.load_state_dict(noise)  # the same draws as the separate losses took
    agent.update(data)
    for name, grads in expected.items():
        assert len(seen[name]) == len(grads)
        for got, want in zip(seen[name], grads, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_critic_thread_updates_are_bit_for_bit_the_sequential_ones(precision: Precision) -> None:
    """The critic's half on a second thread (`behavior.critic_thread`) changes the speed only:
    weights, optimiser state, random streams and metrics equal the sequential update's, bit for bit,
    after many steps (one intra-op thread on both sides, as the stage sets it)."""
    agents, metrics = [], []
    with one_intra_op_thread():
        for side_thread in (False, True):
            torch.manual_seed(0)
            agent = SAC(OBS, ACT, SACConfig(hidden=(64, 64)), CPU, side_thread=side_thread)
            update = accelerate(agent, precision=precision)
            metrics.append([update(batch(256 - step)) for step in range(30)])
            agents.append(agent)
    assert agents[1].side.active and not agents[0].side.active
    sequential, threaded = (dict(flatten(agent.state_dict())) for agent in agents)
    assert sequential.keys() == threaded.keys()
    for key, value in sequential.items():
        assert same(value, threaded[key]), key
    for step, (want, got) in enumerate(zip(*metrics, strict=True)):
        for key in want:
            assert torch.equal(want[key], got[key]), (step, key)


@pytest.mark.parametrize("side_thread", [False, True])
def test_updates_without_diagnostics_learn_the_same_bits(side_thread: bool) -> None:
    """The loop asks for the gradient norms and Q statistics only on the steps it logs: leaving
    them out must change nothing learned, and the losses it still returns must be the same."""
    agents, metrics = [], []
    with one_intra_op_thread():
        for diagnostics in (True, False):
            torch.manual_seed(0)
            agent = SAC(OBS, ACT, SACConfig(hidden=(32, 32)), CPU, side_thread=side_thread)
            metrics.append([agent.update(batch(), diagnostics) for _ in range(10)])
            agents.append(agent)
    with_all, without = (dict(flatten(agent.state_dict())) for agent in agents)
    for key, value in with_all.items():
        assert same(value, without[key]), key
    assert {"grad_norm/critic", "grad_norm/actor", "q_mean"} <= metrics[0][0].keys()
    assert set(metrics[1][0]) == {"critic_loss", "actor_loss", "alpha", "entropy"}
    for full, lean in zip(*metrics, strict=True):
        for key, value in lean.items():
            assert torch.equal(value, full[key]), key


def test_update_changes_every_learned_tensor_and_moves_the_target_slowly() -> None:
    torch.manual_seed(0)
    agent = SAC(OBS, ACT, SACConfig(hidden=(32, 32), tau=0.01), torch.device("cpu"))
    before = {k: v.clone() for k, v in agent.state_dict()["critic"].items()}
    target_before = {k: v.clone() for k, v in agent.state_dict()["critic_target"].items()}
    alpha_before = agent.log_alpha.detach().clone()
    actor_before = [p.detach().clone() for p in agent.actor.parameters()]
    metrics = agent.update(batch())
    assert all(torch.isfinite(v) for v in metrics.values())
    after = agent.state_dict()
    assert all(not torch.equal(before[k], after["critic"][k]) for k in before)
    assert all(
        not torch.equal(a, p) for a, p in zip(actor_before, agent.actor.parameters(), strict=True)
    )
    assert not torch.equal(alpha_before, agent.log_alpha.detach())
    for key, old in target_before.items():  # Polyak: tau of the way to the stepped critic
        expected = old + 0.01 * (after["critic"][key] - old)
        torch.testing.assert_close(after["critic_target"][key], expected)


def test_state_dict_round_trip_continues_identically() -> None:
    torch.manual_seed(0)
    config = SACConfig(hidden=(16, 16))
    agent = SAC(OBS, ACT, config, torch.device("cpu"))
    agent.update(batch())
    copy = SAC(OBS, ACT, config, torch.device("cpu"), seed=99)
    copy.load_state_dict(agent.state_dict())  # the random stream's position included
    a = agent.update(batch())
    b = copy.update(batch())
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sample_filled_draws_only_filled_rows_as_the_buffer_grows() -> None:
    buffer = ReplayBuffer(1, 1, capacity=1000, seeds=[0])
    for size in (1, 7, 300):
        while buffer.size < size:
            n = buffer.size
            buffer.add(
                torch.full((1, 1), float(n)), torch.zeros(1, 1), torch.zeros(1),
                torch.zeros(1, 1), torch.zeros(1),
            )  # fmt: skip
        assert int(buffer.filled) == size
        rows = buffer.sample_filled(4096).observations[0, :, 0]
        assert rows.min() >= 0 and rows.max() <= size - 1
        assert len(rows.unique()) == min(size, 4096) or (size == 300 and len(rows.unique()) > 290)


def online_updates(graphed: bool, precision: Precision, steps: int = 40) -> tuple[SAC, Any]:
    """The behaviour stage's learner on a GPU (Hopper-v5): a row added, then one update from its
    own `update_fn`, `steps` times."""
    config = BehaviorConfig(
        steps=steps,
        random_steps=0,
        batch_size=32,
        checkpoint_steps=(steps,),
        device="cuda",
        precision=precision,
        cuda_graph=graphed,
        sac=SACConfig(hidden=(64, 64)),
    )
    torch.manual_seed(0)
    run = BehaviorRun("Hopper-v5", config, seed=3)
    step = run.update_fn()
    assert isinstance(step, GraphedTrainStep) == graphed
    obs_dim, act_dim = run.dims
    rows = torch.Generator().manual_seed(2)
    metrics: dict[str, torch.Tensor] = {}
    for _ in range(steps):
        run.buffer.add(
            *(
                field.to(run.device)
                for field in (
                    torch.randn(1, obs_dim, generator=rows),
                    torch.rand(1, act_dim, generator=rows) * 2 - 1,
                    torch.randn(1, generator=rows),
                    torch.randn(1, obs_dim, generator=rows),
                    (torch.rand(1, generator=rows) < 0.1).float(),
                )
            )
        )
        metrics = step(True)
    assert isinstance(run.agent, SAC)
    return run.agent, (step, metrics)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_graphed_updates_on_a_growing_buffer_do_what_eager_ones_do(precision: Precision) -> None:
    # The graph is captured once, while the buffer holds 2 rows; its later replays must sample all
    # the rows filled by then, as eager updates do.
    eager, (_, eager_metrics) = online_updates(False, precision)
    graphed, (step, graphed_metrics) = online_updates(True, precision)
    assert step.captured == 1
    for part in ("actor", "critic", "critic_target"):
        want, got = getattr(eager, part).state_dict(), getattr(graphed, part).state_dict()
        for key in want:  # same kernels and random numbers; only cuBLAS may pick other kernels
            torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5, msg=key)
    torch.testing.assert_close(graphed.log_alpha, eager.log_alpha, rtol=1e-4, atol=1e-6)
    for key, value in eager_metrics.items():
        torch.testing.assert_close(graphed_metrics[key], value, rtol=1e-3, atol=1e-4, msg=key)
