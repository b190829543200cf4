"""The actors: deterministic (tanh), categorical (discrete actions) and the two Gaussian policies, which share one interface
(`GaussianPolicy`: `distribution(obs)` returns a `PolicyDistribution`, and `sample`, `sample_n`,
`log_prob` and `forward` go through it). Like every network here they hold one member per training
seed (networks.py), and their random draws come from a `SeedNoise`, each seed's from its own
stream.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal

from offline_rl.networks import EnsembleLinear, Observations, ensemble_mlp, observation_mlp
from offline_rl.seeds import SeedNoise


class DeterministicActor(nn.Module):
    """a = tanh(f(s)) in [-1, 1]; actions are kept in that range by the data loader."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...] = (256, 256),
        layer_norm: bool = False,
        seeds: int = 1,
    ) -> None:
        super().__init__()
        self.net = ensemble_mlp(obs_dim, act_dim, hidden, seeds, layer_norm)

    def forward(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.net(obs))


class CategoricalActor(nn.Module):
    """pi(.|s) over n discrete actions as logits, (S, B, n); `forward` gives the most likely
    action's index, (S, B) int64 (discrete BC)."""

    def __init__(
        self,
        obs_dim: Observations,
        num_actions: int,
        hidden: tuple[int, ...] = (256, 256),
        seeds: int = 1,
    ) -> None:
        super().__init__()
        self.net = observation_mlp(obs_dim, num_actions, hidden, seeds)

    def logits(self, obs: Tensor) -> Tensor:
        return self.net(obs)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs).argmax(-1)


class PolicyDistribution:
    """pi(.|s) of a Gaussian actor over a batch of states, what both Gaussian actors return from
    `distribution(obs)`: `sample` / `sample_n` draw reparameterised actions in [-1, 1] with their
    log-densities (S, B, ...) from a `SeedNoise` (each seed's from its own stream), `log_prob`
    scores given actions (S, B), `mode` is the deterministic action."""

    def __init__(self, mean: Tensor, log_std: Tensor) -> None:
        self.mean, self.log_std = mean, log_std  # log_std broadcasts against mean

    @property
    def mode(self) -> Tensor:
        raise NotImplementedError

    def sample(self, noise: SeedNoise) -> tuple[Tensor, Tensor]:
        """One action per state, (S, B, A), and its log-probability, (S, B)."""
        actions, log_prob = self.sample_n(1, noise)
        return actions.squeeze(-2), log_prob.squeeze(-1)

    def sample_n(self, n: int, noise: SeedNoise) -> tuple[Tensor, Tensor]:
        """`n` actions per state, (S, B, n, A), and their log-probabilities, (S, B, n), from one
        pass of the network over the batch (not over n copies of it)."""
        raise NotImplementedError

    def log_prob(self, actions: Tensor) -> Tensor:
        raise NotImplementedError


class TanhNormal(PolicyDistribution):
    """a = tanh(u), u ~ N(mean, exp(log_std)): log-densities account for the tanh."""

    @property
    def mode(self) -> Tensor:
        return torch.tanh(self.mean)

    def sample_n(self, n: int, noise: SeedNoise) -> tuple[Tensor, Tensor]:
        eps = noise.randn((*self.mean.shape[1:-1], n, self.mean.shape[-1]), dtype=self.mean.dtype)
        return self.reparameterised(eps)

    def reparameterised(self, eps: Tensor) -> tuple[Tensor, Tensor]:
        """The actions (S, B, n, A) and log-probabilities (S, B, n) of standard normal draws
        `eps` (S, B, n, A) in the mean's dtype: `sample_n` with its noise drawn beforehand."""
        if eps.dtype != self.mean.dtype:
            raise ValueError(f"draws of {eps.dtype} for a distribution of {self.mean.dtype}")
        mean, log_std = self.mean.unsqueeze(-2), self.log_std.unsqueeze(-2)
        pre_tanh = mean + log_std.exp() * eps
        return torch.tanh(pre_tanh), gaussian_log_prob(eps, log_std) - squash_correction(pre_tanh)

    def log_prob(self, actions: Tensor) -> Tensor:
        """log pi(a|s) of actions in [-1, 1] (clipped away from +-1 to keep atanh finite)."""
        pre_tanh = torch.atanh(actions.clamp(-1 + 1e-6, 1 - 1e-6))
        eps = (pre_tanh - self.mean) * torch.exp(-self.log_std)
        return gaussian_log_prob(eps, self.log_std) - squash_correction(pre_tanh)


class ClippedNormal(PolicyDistribution):
    """a ~ N(mean, exp(log_std)) with the mean already in [-1, 1]; samples are clipped to it, and
    their log-densities are the Gaussian's at the draw (before the clip)."""

    @property
    def mode(self) -> Tensor:
        return self.mean

    def sample(self, noise: SeedNoise) -> tuple[Tensor, Tensor]:
        eps = noise.randn(self.mean.shape[1:], dtype=self.mean.dtype)
        actions = (self.mean + self.log_std.exp() * eps).clamp(-1.0, 1.0)
        return actions, gaussian_log_prob(eps, self.log_std)

    def sample_n(self, n: int, noise: SeedNoise) -> tuple[Tensor, Tensor]:
        mean, log_std = self.mean.unsqueeze(-2), self.log_std.unsqueeze(-2)
        eps = noise.randn((*mean.shape[1:-2], n, mean.shape[-1]), dtype=mean.dtype)
        actions = (mean + log_std.exp() * eps).clamp(-1.0, 1.0)
        return actions, gaussian_log_prob(eps, log_std)

    def log_prob(self, actions: Tensor) -> Tensor:
        """log pi(a|s) summed over the action's dimensions; no atanh of the data's actions, so
        actions at the bounds +-1 carry no singular weight."""
        return gaussian(self.mean, self.log_std.exp()).log_prob(actions).sum(-1)


class GaussianPolicy(nn.Module):
    """What both Gaussian actors share: `distribution(obs)` and the sampling and scoring through
    it; `forward` gives the mode (deterministic) or a sample."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...] = (256, 256),
        log_std_min: float = -20.0,
        log_std_max: float = 2.0,
        seeds: int = 1,
    ) -> None:
        super().__init__()
        self.log_std_min, self.log_std_max = log_std_min, log_std_max  # the log-std's clamp
        self.build(obs_dim, act_dim, hidden, seeds)

    def build(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], seeds: int) -> None:
        """Make the networks, one member per seed."""
        raise NotImplementedError

    def distribution(self, obs: Tensor) -> PolicyDistribution:
        raise NotImplementedError

    def sample(self, obs: Tensor, noise: SeedNoise) -> tuple[Tensor, Tensor]:
        """Reparameterised actions in [-1, 1], (S, B, A), and their log-probabilities, (S, B)."""
        return self.distribution(obs).sample(noise)

    def sample_n(self, obs: Tensor, n: int, noise: SeedNoise) -> tuple[Tensor, Tensor]:
        """`n` actions per state, (S, B, n, A), and their log-probabilities, (S, B, n)."""
        return self.distribution(obs).sample_n(n, noise)

    def log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        """log pi(a|s) of dataset actions in [-1, 1]: (S, B)."""
        return self.distribution(obs).log_prob(actions)

    def forward(
        self, obs: Tensor, deterministic: bool = True, noise: SeedNoise | None = None
    ) -> Tensor:
        if deterministic:
            return self.distribution(obs).mode
        if noise is None:
            raise ValueError("a stochastic action needs a SeedNoise to draw from")
        return self.sample(obs, noise)[0]


class TanhGaussianActor(GaussianPolicy):
    """Squashed Gaussian policy (SAC, CQL): tanh(u), u ~ N(mu(s), sigma(s)) (`TanhNormal`)."""

    def build(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], seeds: int) -> None:
        self.trunk = ensemble_mlp(obs_dim, None, hidden, seeds)
        self.head = EnsembleLinear(hidden[-1], 2 * act_dim, seeds)  # mean and log-std

    def distribution(self, obs: Tensor) -> TanhNormal:
        mean, log_std = self.head(self.trunk(obs)).chunk(2, dim=-1)
        return TanhNormal(mean, log_std.clamp(self.log_std_min, self.log_std_max))


class GaussianActor(GaussianPolicy):
    """N(tanh(f(s)), exp(log_std)) with one learned, state-independent log-std per action dimension
    (`ClippedNormal`): CORL's IQL and AWAC policy."""

    def build(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], seeds: int) -> None:
        self.mean = DeterministicActor(obs_dim, act_dim, hidden, seeds=seeds)
        self.log_std = nn.Parameter(torch.zeros(seeds, 1, act_dim))

    def distribution(self, obs: Tensor) -> ClippedNormal:
        log_std = self.log_std.clamp(self.log_std_min, self.log_std_max)
        return ClippedNormal(
            self.mean(obs), log_std.view(log_std.shape[0], *([1] * (obs.dim() - 2)), -1)
        )


def gaussian_log_prob(eps: Tensor, log_std: Tensor) -> Tensor:
    """log N(mean + std * eps; mean, std), summed over the last (action) dimension."""
    return (-0.5 * eps.square() - log_std).sum(-1) - 0.5 * eps.shape[-1] * math.log(2 * math.pi)


def squash_correction(pre_tanh: Tensor) -> Tensor:
    """sum log(1 - tanh(u)^2), in the numerically stable form used by SAC implementations."""
    return (2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))).sum(-1)


def gaussian(mean: Tensor, std: Tensor) -> Normal:
    """Normal(mean, std) without torch's argument checks: they read a device value back to the
    host at every construction and log_prob (a sync per call, and an error inside a CUDA graph);
    std is positive by construction (an exponential) wherever this is called."""
    return Normal(mean, std, validate_args=False)
