from __future__ import annotations

import torch
from torch import nn

from offline_rl.networks import (
    EnsembleCritic,
    EnsembleLinear,
    TanhGaussianActor,
    make_adam,
    mlp,
    soft_update,
    widening_linear,
)


def test_ensemble_critic_equals_separate_critics() -> None:
    torch.manual_seed(0)
    critic = EnsembleCritic(5, 2, (16, 16), ensemble_size=3)
    obs, act = torch.randn(7, 5), torch.randn(7, 2)
    q = critic(obs, act)
    assert q.shape == (3, 7)
    x = torch.cat([obs, act], -1)
    for member in range(3):
        h = x
        layers = [m for m in critic.net if isinstance(m, EnsembleLinear)]
        for i, layer in enumerate(layers):
            h = h @ layer.weight[member] + layer.bias[member]
            if i < len(layers) - 1:
                h = torch.relu(h)
        torch.testing.assert_close(q[member], h.squeeze(-1))


def test_ensemble_critic_gradients_equal_separate_critics() -> None:
    """The Q head's multiply-and-sum and in-place ReLUs give the gradients of plain matmuls."""
    torch.manual_seed(0)
    critic = EnsembleCritic(5, 2, (16, 16), ensemble_size=2)
    obs, act = torch.randn(7, 5), torch.randn(7, 2, requires_grad=True)
    critic(obs, act).square().sum().backward()
    layers = [m for m in critic.net if isinstance(m, EnsembleLinear)]
    params = [p for layer in layers for p in (layer.weight, layer.bias)]
    reference = [p.detach().clone().requires_grad_(True) for p in params]
    ref_act = act.detach().clone().requires_grad_(True)
    for member in range(2):
        h = torch.cat([obs, ref_act], -1)
        for i in range(len(layers)):
            weight, bias = reference[2 * i], reference[2 * i + 1]
            h = h @ weight[member] + bias[member]
            h = torch.relu(h) if i < len(layers) - 1 else h
        h.square().sum().backward()
    for param, ref in zip(params, reference, strict=True):
        torch.testing.assert_close(param.grad, ref.grad)
    torch.testing.assert_close(act.grad, ref_act.grad)


def test_tanh_gaussian_sample_n_draws_per_state() -> None:
    torch.manual_seed(0)
    actor = TanhGaussianActor(4, 2, (32, 32))
    obs = torch.randn(5, 4)
    actions, log_prob = actor.sample_n(obs, 3)
    assert actions.shape == (5, 3, 2) and log_prob.shape == (5, 3)
    assert not torch.equal(actions[:, 0], actions[:, 1])  # independent draws
    repeated = obs.repeat_interleave(3, dim=0)
    torch.testing.assert_close(
        actor.log_prob(repeated, actions.flatten(0, 1)), log_prob.flatten(), atol=1e-3, rtol=1e-3
    )


def test_tanh_gaussian_log_prob_matches_sample() -> None:
    torch.manual_seed(0)
    actor = TanhGaussianActor(4, 2, (32, 32))
    obs = torch.randn(64, 4)
    action, log_prob = actor.sample(obs)
    assert action.abs().max() < 1
    torch.testing.assert_close(actor.log_prob(obs, action), log_prob, atol=1e-3, rtol=1e-3)


def test_soft_update_moves_target_by_tau() -> None:
    source, target = nn.Linear(3, 3), nn.Linear(3, 3)
    before = target.weight.detach().clone()
    soft_update(target, source, 0.25)
    torch.testing.assert_close(target.weight, 0.75 * before + 0.25 * source.weight.detach())


def test_ensemble_critic_first_members_match_the_full_ensemble() -> None:
    torch.manual_seed(0)
    critic = EnsembleCritic(5, 2, (16, 16), ensemble_size=3)
    obs, action = torch.randn(7, 5), torch.randn(7, 2)
    full = critic(obs, action)
    assert critic(obs, action, members=1).shape == (1, 7)
    torch.testing.assert_close(critic(obs, action, members=1), full[:1])
    torch.testing.assert_close(critic(obs, action, members=2), full[:2])


def test_actor_gradient_restricted_to_the_actor_is_unchanged() -> None:
    """backward(inputs=actor params) skips the critic's weight gradients, not the actor's."""
    torch.manual_seed(0)
    actor, critic = nn.Linear(5, 2), EnsembleCritic(5, 2, (16,), ensemble_size=2)
    obs = torch.randn(9, 5)
    grads = []
    for inputs in (None, list(actor.parameters())):
        actor.zero_grad(set_to_none=True)
        critic.zero_grad(set_to_none=True)
        critic(obs, torch.tanh(actor(obs))).min(0).values.mean().backward(inputs=inputs)
        grads.append([p.grad.clone() for p in actor.parameters() if p.grad is not None])
    assert all(p.grad is None for p in critic.parameters())  # the restricted pass left them alone
    for full, restricted in zip(*grads, strict=True):
        torch.testing.assert_close(full, restricted)


def test_widening_linear_is_an_nn_linear_with_a_column_major_weight() -> None:
    """Same initial values, outputs, gradients and state_dict as nn.Linear; only the weight's
    memory layout differs, and its gradient arrives in that layout (no copy per backward)."""
    torch.manual_seed(0)
    plain = nn.Linear(11, 64)
    torch.manual_seed(0)
    widening = widening_linear(11, 64)
    assert widening.weight.stride() == (1, 64)
    torch.testing.assert_close(widening.state_dict(), plain.state_dict(), rtol=0, atol=0)
    x, upstream = torch.randn(32, 11), torch.randn(32, 64)
    plain(x).backward(upstream)
    widening(x).backward(upstream)
    assert widening.weight.grad is not None and plain.weight.grad is not None
    assert widening.weight.grad.stride() == widening.weight.stride()
    torch.testing.assert_close(widening.weight.grad, plain.weight.grad)
    optimizer = make_adam(widening, 1e-2)  # the fused kernel on a column-major parameter
    reference = make_adam(plain, 1e-2)
    optimizer.step()
    reference.step()
    torch.testing.assert_close(widening.state_dict(), plain.state_dict())
    # Checkpoints cross layouts both ways (a row-major file loads into it and back).
    widening.load_state_dict(nn.Linear(11, 64).state_dict())
    plain.load_state_dict(widening.state_dict())
    torch.testing.assert_close(plain(x), widening(x))


def test_mlp_stores_only_widening_layers_column_major() -> None:
    net = mlp(11, 3, (256, 256))
    linears = [m for m in net if isinstance(m, nn.Linear)]
    assert [layer.weight.is_contiguous() for layer in linears] == [False, True, True]
