"""The shared networks: ensembles equal separate networks, seeds equal separate runs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from offline_rl.actors import GaussianActor, GaussianPolicy, TanhGaussianActor
from offline_rl.networks import (
    EnsembleCritic,
    EnsembleLayerNorm,
    EnsembleLinear,
    adam_step,
    grad_norm,
    make_adam,
    q_stats,
    soft_update,
)
from offline_rl.seeds import SeedNoise, seed_slice


def reference_q(critic: EnsembleCritic, x: torch.Tensor, member: int) -> torch.Tensor:
    """One critic member as plain matmuls (member index in the member-major layout)."""
    layers = [m for m in critic.net if isinstance(m, EnsembleLinear)]
    h = x
    for i, layer in enumerate(layers):
        h = h @ layer.weight[member] + layer.bias[member]
        if i < len(layers) - 1:
            h = torch.relu(h)
    return h.squeeze(-1)


def test_ensemble_critic_equals_separate_critics_for_every_seed() -> None:
    torch.manual_seed(0)
    critic = EnsembleCritic(5, 2, (16, 16), ensemble_size=3, seeds=2)
    obs, act = torch.randn(2, 7, 5), torch.randn(2, 7, 2)
    q = critic(obs, act)
    assert q.shape == (3, 2, 7)
    for e in range(3):
        for s in range(2):  # member-major: critic e of seed s is member e * seeds + s
            x = torch.cat([obs[s], act[s]], -1)
            torch.testing.assert_close(q[e, s], reference_q(critic, x, e * 2 + s))


def test_ensemble_critic_gradients_equal_separate_critics() -> None:
    """The Q head's multiply-and-sum and in-place ReLUs give the gradients of plain matmuls."""
    torch.manual_seed(0)
    critic = EnsembleCritic(5, 2, (16, 16), ensemble_size=2)
    obs, act = torch.randn(1, 7, 5), torch.randn(1, 7, 2, requires_grad=True)
    critic(obs, act).square().sum().backward()
    layers = [m for m in critic.net if isinstance(m, EnsembleLinear)]
    params = [p for layer in layers for p in (layer.weight, layer.bias)]
    reference = [p.detach().clone().requires_grad_(True) for p in params]
    ref_act = act.detach().clone().requires_grad_(True)
    for member in range(2):
        h = torch.cat([obs[0], ref_act[0]], -1)
        for i in range(len(layers)):
            weight, bias = reference[2 * i], reference[2 * i + 1]
            h = h @ weight[member] + bias[member]
            h = torch.relu(h) if i < len(layers) - 1 else h
        h.square().sum().backward()
    for param, ref in zip(params, reference, strict=True):
        torch.testing.assert_close(param.grad, ref.grad)
    torch.testing.assert_close(act.grad, ref_act.grad)


def test_frozen_critic_passes_gradients_to_actions_only() -> None:
    torch.manual_seed(0)
    critic = EnsembleCritic(5, 2, (16, 16), layer_norm=True)
    obs, act = torch.randn(1, 7, 5), torch.randn(1, 7, 2, requires_grad=True)
    frozen = critic(obs, act, frozen=True)
    torch.testing.assert_close(frozen, critic(obs, act))
    frozen.sum().backward()
    assert act.grad is not None and act.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.parameters())


def test_layer_norm_has_its_own_gain_per_member() -> None:
    norm = EnsembleLayerNorm(4, members=2)
    with torch.no_grad():
        norm.weight[1] = 2.0
    x = torch.randn(2, 3, 4)
    out = norm(x)
    torch.testing.assert_close(out[0], nn.functional.layer_norm(x[0], (4,)))
    torch.testing.assert_close(out[1], 2 * nn.functional.layer_norm(x[1], (4,)))


def test_tanh_gaussian_sample_n_draws_per_state() -> None:
    torch.manual_seed(0)
    actor = TanhGaussianActor(4, 2, (32, 32))
    noise = SeedNoise([0], torch.device("cpu"))
    obs = torch.randn(1, 5, 4)
    actions, log_prob = actor.sample_n(obs, 3, noise)
    assert actions.shape == (1, 5, 3, 2) and log_prob.shape == (1, 5, 3)
    assert not torch.equal(actions[:, :, 0], actions[:, :, 1])  # independent draws
    repeated = obs.repeat_interleave(3, dim=1)
    torch.testing.assert_close(
        actor.log_prob(repeated, actions.flatten(1, 2)), log_prob.flatten(1), atol=1e-3, rtol=1e-3
    )


def test_tanh_gaussian_log_prob_matches_sample_and_torch() -> None:
    torch.manual_seed(0)
    actor = TanhGaussianActor(4, 2, (32, 32))
    obs = torch.randn(1, 64, 4)
    action, log_prob = actor.sample(obs, SeedNoise([0], torch.device("cpu")))
    assert action.abs().max() < 1
    torch.testing.assert_close(actor.log_prob(obs, action), log_prob, atol=1e-3, rtol=1e-3)
    pi = actor.distribution(obs)
    mean, log_std = pi.mean, pi.log_std
    pre_tanh = torch.atanh(action)
    expected = torch.distributions.Normal(mean, log_std.exp()).log_prob(pre_tanh).sum(-1)
    expected -= torch.log(1 - action.square()).sum(-1)
    torch.testing.assert_close(log_prob, expected, atol=1e-3, rtol=1e-3)


def test_a_seeds_samples_do_not_depend_on_the_other_seeds() -> None:
    """Seed 7's draws in a run of seeds (3, 7) are those of seed 7 alone."""
    both = SeedNoise([3, 7], torch.device("cpu")).randn((4, 2))
    alone = SeedNoise([7], torch.device("cpu")).randn((4, 2))
    torch.testing.assert_close(both[1], alone[0], rtol=0, atol=0)
    assert not torch.equal(both[0], both[1])


def test_gaussian_actor_std_is_per_seed() -> None:
    actor = GaussianActor(3, 2, (8,), seeds=2)
    with torch.no_grad():
        actor.log_std[1] = -1.0
    std = actor.distribution(torch.randn(2, 5, 3)).log_std.exp().expand(2, 5, 2)
    torch.testing.assert_close(std[0], torch.ones(5, 2))
    torch.testing.assert_close(std[1], torch.full((5, 2), torch.e**-1))


@pytest.mark.parametrize("actor_class", [TanhGaussianActor, GaussianActor])
def test_both_gaussian_actors_sample_and_score_alike(actor_class: type[GaussianPolicy]) -> None:
    """One interface: samples in [-1, 1] with log-probabilities, n per state from one pass, and the
    log-probability of given actions, in the same shapes from either actor."""
    torch.manual_seed(0)
    actor = actor_class(4, 2, (16,), seeds=2)
    noise = SeedNoise([0, 1], torch.device("cpu"))
    obs = torch.randn(2, 5, 4)
    actions, log_prob = actor.sample(obs, noise)
    assert actions.shape == (2, 5, 2) and log_prob.shape == (2, 5)
    assert actions.abs().max() <= 1
    many, many_log_prob = actor.sample_n(obs, 3, noise)
    assert many.shape == (2, 5, 3, 2) and many_log_prob.shape == (2, 5, 3)
    assert actor.log_prob(obs, actions).shape == (2, 5)
    assert actor(obs).shape == (2, 5, 2) and actor(obs, False, noise).shape == (2, 5, 2)


def test_grad_norm_and_q_stats_are_per_seed() -> None:
    torch.manual_seed(0)
    critic = EnsembleCritic(3, 1, (8,), seeds=2)
    q = critic(torch.randn(2, 5, 3), torch.randn(2, 5, 1))
    (q[:, 1] * 3).sum().backward()  # only seed 1's critics get gradients
    norms = grad_norm(critic, 2)
    assert norms[0] == 0 and norms[1] > 0
    seed1 = [seed_slice(p.grad, 1, 2) for p in critic.parameters()]  # type: ignore[arg-type]
    torch.testing.assert_close(
        norms[1], torch.stack([g.square().sum() for g in seed1]).sum().sqrt()
    )
    stats = q_stats(q)
    torch.testing.assert_close(stats["q_mean"], q.detach().mean((0, 2)))
    torch.testing.assert_close(stats["q_max"], q.detach().amax((0, 2)))


def test_soft_update_moves_target_by_tau() -> None:
    source, target = nn.Linear(3, 3), nn.Linear(3, 3)
    before = target.weight.detach().clone()
    soft_update(target, source, 0.25)
    torch.testing.assert_close(target.weight, 0.75 * before + 0.25 * source.weight.detach())


def test_ensemble_critic_first_members_match_the_full_ensemble() -> None:
    torch.manual_seed(0)
    critic = EnsembleCritic(5, 2, (16, 16), ensemble_size=3, seeds=2)
    obs, action = torch.randn(2, 7, 5), torch.randn(2, 7, 2)
    full = critic(obs, action)
    assert critic(obs, action, members=1).shape == (1, 2, 7)
    torch.testing.assert_close(critic(obs, action, members=1), full[:1])
    torch.testing.assert_close(critic(obs, action, members=2), full[:2])


def test_actor_gradient_restricted_to_the_actor_is_unchanged() -> None:
    """backward(inputs=actor params) skips the critic's weight gradients, not the actor's."""
    torch.manual_seed(0)
    actor, critic = nn.Linear(5, 2), EnsembleCritic(5, 2, (16,), ensemble_size=2)
    obs = torch.randn(1, 9, 5)
    grads = []
    for inputs in (None, list(actor.parameters())):
        actor.zero_grad(set_to_none=True)
        critic.zero_grad(set_to_none=True)
        critic(obs, torch.tanh(actor(obs))).min(0).values.mean().backward(inputs=inputs)
        grads.append([p.grad.clone() for p in actor.parameters() if p.grad is not None])
    assert all(p.grad is None for p in critic.parameters())  # the restricted pass left them alone
    for full, restricted in zip(*grads, strict=True):
        torch.testing.assert_close(full, restricted)


def test_adam_step_is_optimizer_step_bit_for_bit_also_after_a_reload() -> None:
    """The lean step calls torch's fused kernel itself: the same parameters and moments as
    `optimizer.step()` after many steps, and after `load_state_dict` brings new state tensors."""
    torch.manual_seed(0)
    nets = [EnsembleCritic(5, 2, (16, 16), ensemble_size=2) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    optimizers = [make_adam(net, 3e-4) for net in nets]
    data = torch.Generator().manual_seed(1)
    for step in range(40):
        obs, action = torch.randn(1, 32, 5, generator=data), torch.randn(1, 32, 2, generator=data)
        for net, optimizer, lean in zip(nets, optimizers, (False, True), strict=True):
            optimizer.zero_grad(set_to_none=True)
            net(obs, action).square().mean().backward()
            adam_step(optimizer) if lean else optimizer.step()
        if step == 20:  # a resume: every state tensor replaced by a loaded copy
            saved = optimizers[1].state_dict()
            optimizers[1] = make_adam(nets[1], 3e-4)
            optimizers[1].load_state_dict(saved)
        optimizers[1].step = _not_taken  # type: ignore[method-assign,assignment]  # lean from now on
    for stepped, lean_stepped in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        assert torch.equal(stepped, lean_stepped)
    states = (o.state_dict()["state"].values() for o in optimizers)
    for state, lean_state in zip(*states, strict=True):
        assert all(torch.equal(state[k], lean_state[k]) for k in ("step", "exp_avg", "exp_avg_sq"))


def _not_taken(*_: object) -> None:
    raise AssertionError("optimizer.step() called where the lean step should have run")


def test_adam_step_takes_the_optimizers_own_step_where_it_must() -> None:
    """The first step (no state yet) and a step hook go through `optimizer.step()`."""
    net = nn.Linear(3, 1)
    optimizer = make_adam(net, 1e-3)
    calls: list[int] = []
    optimizer.register_step_post_hook(lambda *_: calls.append(1))
    for _ in range(3):
        optimizer.zero_grad()
        net(torch.ones(2, 3)).sum().backward()
        adam_step(optimizer)
    assert len(calls) == 3 and int(optimizer.state[net.weight]["step"]) == 3
