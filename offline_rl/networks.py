"""Networks shared by every algorithm, each holding the networks of S training seeds at once.

Every layer is an ensemble: its parameters have a leading member dimension and one batched matmul
runs all members. An actor of S seeds has S members and maps observations (S, B, obs_dim) to
actions (S, B, act_dim), row k of seed k through seed k's weights; a critic of E networks per seed
has E * S members, stored member-major (all seeds' first critics, then their second ones) and
returns (E, S, B). A single-seed run is S = 1, the same code. Parameters of one seed are
`tensor.unflatten(0, (-1, S))[:, k]` (offline_rl/seeds.py builds and splits them).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal

from offline_rl.seeds import SeedNoise


class EnsembleLinear(nn.Module):
    """`members` independent linear layers applied with one batched matmul."""

    def __init__(self, in_dim: int, out_dim: int, members: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(members, 1, out_dim))
        # nn.Linear's initial distribution, member by member.
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor, frozen: bool = False) -> Tensor:
        # x: (members, batch, in) -> (members, batch, out). Fewer rows of x than members run the
        # first members only (TD3's actor objective needs Q_1 alone); slicing only then: a slice
        # costs a zero-filled copy of the gradient in every backward pass.
        # `frozen`: gradients reach x but not the weights.
        members = x.shape[0]
        weight: Tensor = self.weight.detach() if frozen else self.weight
        bias: Tensor = self.bias.detach() if frozen else self.bias
        if members != weight.shape[0]:
            weight, bias = weight[:members], bias[:members]
        if weight.shape[-1] == 1 and x.device.type == "cpu" and x.dtype == torch.float32:
            # A one-output head is a batched matrix-vector product, which fp32 bmm runs far from
            # peak on CPU, where multiply-and-sum is faster forward and backward (measured:
            # docs/performance.md). In bf16 (autocast) bmm is the faster one, and on GPU bmm is
            # one kernel where this is three.
            return (x * weight.transpose(1, 2)).sum(-1, keepdim=True) + bias
        return torch.baddbmm(bias, x, weight)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with its own gain and bias per member."""

    def __init__(self, width: int, members: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, 1, width))
        self.bias = nn.Parameter(torch.zeros(members, 1, width))

    def forward(self, x: Tensor, frozen: bool = False) -> Tensor:
        members = x.shape[0]
        weight = self.weight.detach() if frozen else self.weight
        bias = self.bias.detach() if frozen else self.bias
        normed = F.layer_norm(x, x.shape[-1:])
        return torch.addcmul(bias[:members], normed, weight[:members])


def ensemble_mlp(
    in_dim: int,
    out_dim: int | None,
    hidden: tuple[int, ...],
    members: int,
    layer_norm: bool = False,
) -> nn.Sequential:
    """ReLU MLP of `members` members; optional LayerNorm after each hidden layer (ReBRAC). With
    `out_dim` None it ends at the last hidden layer's ReLU (a trunk for several heads)."""
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden:
        layers.append(EnsembleLinear(last, width, members))
        if layer_norm:
            layers.append(EnsembleLayerNorm(width, members))
        layers.append(nn.ReLU(inplace=True))
        last = width
    if out_dim is not None:
        layers.append(EnsembleLinear(last, out_dim, members))
    return nn.Sequential(*layers)


def run_frozen(net: nn.Sequential, x: Tensor) -> Tensor:
    """`net(x)` with every layer's weights out of the graph: gradients reach x only."""
    for layer in net:
        x = (
            layer(x, frozen=True)
            if isinstance(layer, EnsembleLinear | EnsembleLayerNorm)
            else layer(x)
        )
    return x


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
        mean, log_std = self.mean.unsqueeze(-2), self.log_std.unsqueeze(-2)
        eps = noise.randn((*mean.shape[1:-2], n, mean.shape[-1]), dtype=mean.dtype)
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
        self.trunk = ensemble_mlp(obs_dim, None, hidden, seeds)
        self.head = EnsembleLinear(hidden[-1], 2 * act_dim, seeds)  # mean and log-std
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def distribution(self, obs: Tensor) -> TanhNormal:
        mean, log_std = self.head(self.trunk(obs)).chunk(2, dim=-1)
        return TanhNormal(mean, log_std.clamp(self.log_std_min, self.log_std_max))


class GaussianActor(GaussianPolicy):
    """N(tanh(f(s)), exp(log_std)) with one learned, state-independent log-std per action dimension
    (`ClippedNormal`): CORL's IQL and AWAC policy."""

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
        self.mean = DeterministicActor(obs_dim, act_dim, hidden, seeds=seeds)
        self.log_std = nn.Parameter(torch.zeros(seeds, 1, act_dim))
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

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


class EnsembleCritic(nn.Module):
    """Q_1..Q_E(s, a) of each of S seeds computed together: returns shape (E, S, B)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...] = (256, 256),
        ensemble_size: int = 2,
        layer_norm: bool = False,
        seeds: int = 1,
    ) -> None:
        super().__init__()
        self.ensemble_size, self.seeds = ensemble_size, seeds
        self.net = ensemble_mlp(obs_dim + act_dim, 1, hidden, ensemble_size * seeds, layer_norm)

    def forward(
        self, obs: Tensor, action: Tensor, members: int | None = None, frozen: bool = False
    ) -> Tensor:
        """Q-values of each seed's first `members` critics (all by default): (members, S, B),
        for observations and actions (S, B, ...).

        `frozen`: the critic as a fixed function of (obs, action), its weights out of the graph,
        so that an actor's loss and the critic's own can share one backward pass (SAC)."""
        members = members or self.ensemble_size
        x = torch.cat([obs, action], dim=-1)
        x = x.unsqueeze(0).expand(members, *x.shape).flatten(0, 1)  # member-major, like the weights
        q = run_frozen(self.net, x) if frozen else self.net(x)
        return q.view(members, obs.shape[0], *obs.shape[1:-1])


def gaussian(mean: Tensor, std: Tensor) -> Normal:
    """Normal(mean, std) without torch's argument checks: they read a device value back to the
    host at every construction and log_prob (a sync per call, and an error inside a CUDA graph);
    std is positive by construction (an exponential) wherever this is called."""
    return Normal(mean, std, validate_args=False)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging target <- (1 - tau) target + tau source, with one fused foreach call."""
    with torch.no_grad():
        target_params = list(target.parameters())
        source_params = list(source.parameters())
        torch._foreach_lerp_(target_params, source_params, tau)  # type: ignore[arg-type]


def make_adam(params: list[nn.Parameter] | nn.Module, lr: float | Tensor) -> torch.optim.Adam:
    """Adam with the fused implementation: one kernel per parameter does the whole update, on
    CPU and CUDA (faster than foreach: docs/performance.md). Same maths as
    torch's default Adam, and elementwise, so each seed's slice of a parameter is stepped exactly
    as it would be alone. A 0-d tensor `lr` on the parameters' device may be changed in place
    between steps (a schedule), also inside a CUDA graph."""
    if isinstance(params, nn.Module):
        params = list(params.parameters())
    return torch.optim.Adam(params, lr=lr, fused=True)


def grad_norm(module: nn.Module, seeds: int) -> Tensor:
    """Each seed's global L2 norm of `module`'s gradients, (S,): read after backward() and
    returned with the losses, so the training loop syncs with the device only when it logs."""
    squares = [
        p.grad.reshape(-1, seeds, p.grad[0].numel()).square().sum((0, 2))
        for p in module.parameters()
        if p.grad is not None
    ]
    if not squares:
        return torch.zeros(seeds)
    return torch.stack(squares).sum(0).sqrt().detach()


def per_seed(x: Tensor) -> Tensor:
    """(S, ...) -> (S, N): each seed's values in one row, for statistics per seed."""
    return x.reshape(x.shape[0], -1)


def q_stats(q: Tensor, prefix: str = "q") -> dict[str, Tensor]:
    """Each seed's mean, std, min and max of critic values (E, S, B), as (S,) tensors."""
    values = per_seed(q.detach().transpose(0, 1))
    return {
        f"{prefix}_mean": values.mean(1),
        f"{prefix}_std": values.std(1),
        f"{prefix}_min": values.amin(1),
        f"{prefix}_max": values.amax(1),
    }
