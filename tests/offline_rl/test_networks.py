from __future__ import annotations

import torch
from torch import nn

from offline_rl.networks import EnsembleCritic, EnsembleLinear, TanhGaussianActor, soft_update


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
