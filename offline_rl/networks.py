"""Networks shared by every algorithm: MLPs, actors and an ensemble critic run as one batched net."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Normal


def mlp(
    in_dim: int,
    out_dim: int,
    hidden: tuple[int, ...] = (256, 256),
    layer_norm: bool = False,
    dropout: float = 0.0,
) -> nn.Sequential:
    """ReLU MLP; optional LayerNorm after each hidden layer (ReBRAC, IQL-style value nets)."""
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden:
        layers.append(widening_linear(last, width) if last < width else nn.Linear(last, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(nn.ReLU(inplace=True))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        last = width
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


def widening_linear(in_dim: int, out_dim: int) -> nn.Linear:
    """nn.Linear (same shapes, initial values and state_dict keys) whose (out, in) weight is
    stored column-major, for layers that widen a narrow input (an observation). Autograd forms
    the weight gradient in the weight's layout: row-major it is g^T x, whose output rows are only
    `in` wide, which BLAS runs far from peak (68 us at batch 256, in 11, out 256 on a 2-core CPU);
    column-major it is x^T g, `out` wide (20 us). The layer's forward+backward: 137 -> 93 us."""
    layer = nn.Linear(in_dim, out_dim)
    layer.weight = nn.Parameter(layer.weight.detach().t().contiguous().t())
    return layer


class DeterministicActor(nn.Module):
    """a = tanh(f(s)) in [-1, 1]; actions are kept in that range by the data loader."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...] = (256, 256),
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        self.net = mlp(obs_dim, act_dim, hidden, layer_norm)

    def forward(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.net(obs))


class TanhGaussianActor(nn.Module):
    """Squashed Gaussian policy (SAC, CQL, AWAC, IQL); `log_prob` accounts for the tanh."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...] = (256, 256),
        log_std_min: float = -20.0,
        log_std_max: float = 2.0,
        state_dependent_std: bool = True,
    ) -> None:
        super().__init__()
        self.trunk = mlp(obs_dim, hidden[-1], hidden[:-1]) if len(hidden) > 1 else nn.Identity()
        trunk_out = hidden[-1] if len(hidden) > 1 else obs_dim
        self.relu = nn.ReLU() if len(hidden) > 1 else nn.Identity()
        self.mean = nn.Linear(trunk_out, act_dim)
        self.state_dependent_std = state_dependent_std
        if state_dependent_std:
            self.log_std: nn.Module | nn.Parameter = nn.Linear(trunk_out, act_dim)
        else:
            self.log_std = nn.Parameter(torch.zeros(act_dim))
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def distribution(self, obs: Tensor) -> tuple[Normal, Tensor]:
        """The pre-tanh Normal and its mean (tanh(mean) is the deterministic action)."""
        features = self.relu(self.trunk(obs))
        mean = self.mean(features)
        if isinstance(self.log_std, nn.Parameter):
            log_std = self.log_std.expand_as(mean)
        else:
            log_std = self.log_std(features)
        log_std = log_std.clamp(self.log_std_min, self.log_std_max)
        return gaussian(mean, log_std.exp()), mean

    def sample(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Reparameterised action in [-1, 1] and its log-probability (summed over action dims)."""
        actions, log_prob = self.sample_n(obs, 1)
        return actions[:, 0], log_prob[:, 0]

    def sample_n(self, obs: Tensor, n: int) -> tuple[Tensor, Tensor]:
        """`n` reparameterised actions per state, (batch, n, act_dim), and their log-probabilities,
        (batch, n), from one pass of the network over the batch (not over n copies of it)."""
        dist, _ = self.distribution(obs)
        pre_tanh = dist.rsample((n,))  # (n, batch, act_dim): the distribution broadcasts over n
        log_prob = dist.log_prob(pre_tanh).sum(-1) - squash_correction(pre_tanh)
        return torch.tanh(pre_tanh).transpose(0, 1), log_prob.transpose(0, 1)

    def log_prob(self, obs: Tensor, action: Tensor) -> Tensor:
        """log pi(a|s) for dataset actions in [-1, 1] (clipped away from +-1 to keep atanh finite)."""
        dist, _ = self.distribution(obs)
        clipped = action.clamp(-1 + 1e-6, 1 - 1e-6)
        pre_tanh = torch.atanh(clipped)
        return dist.log_prob(pre_tanh).sum(-1) - squash_correction(pre_tanh)

    def forward(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        dist, mean = self.distribution(obs)
        return torch.tanh(mean) if deterministic else torch.tanh(dist.rsample())


class GaussianActor(nn.Module):
    """N(tanh(f(s)), exp(log_std)) with one learned, state-independent log-std per action dimension:
    CORL's IQL and AWAC policy. Unlike TanhGaussianActor, log_prob needs no atanh of the data's
    actions, so actions at the bounds +-1 carry no singular weight. Samples may leave [-1, 1]."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...] = (256, 256),
        log_std_min: float = -20.0,
        log_std_max: float = 2.0,
    ) -> None:
        super().__init__()
        self.mean = DeterministicActor(obs_dim, act_dim, hidden)
        self.log_std = nn.Parameter(torch.zeros(act_dim))
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def distribution(self, obs: Tensor) -> Normal:
        std = self.log_std.clamp(self.log_std_min, self.log_std_max).exp()
        return gaussian(self.mean(obs), std)

    def forward(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        dist = self.distribution(obs)
        return dist.mean if deterministic else dist.rsample().clamp(-1.0, 1.0)


def squash_correction(pre_tanh: Tensor) -> Tensor:
    """sum log(1 - tanh(u)^2), in the numerically stable form used by SAC implementations."""
    return (2.0 * (math.log(2.0) - pre_tanh - nn.functional.softplus(-2.0 * pre_tanh))).sum(-1)


class EnsembleLinear(nn.Module):
    """`ensemble_size` independent linear layers applied with one batched matmul."""

    def __init__(self, in_dim: int, out_dim: int, ensemble_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(ensemble_size, 1, out_dim))
        # Same init as nn.Linear, member by member, so an ensemble of 2 matches two Linear critics.
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor, frozen: bool = False) -> Tensor:
        # x: (members, batch, in) -> (members, batch, out); fewer members than the ensemble
        # run the first ones only (TD3's actor objective needs Q_1 alone). Slicing only then:
        # a slice costs a zero-filled copy of the gradient in every backward pass.
        # `frozen`: gradients reach x but not the weights.
        members = x.shape[0]
        weight: Tensor = self.weight.detach() if frozen else self.weight
        bias: Tensor = self.bias.detach() if frozen else self.bias
        if members != weight.shape[0]:
            weight, bias = weight[:members], bias[:members]
        if weight.shape[-1] == 1 and x.device.type == "cpu" and x.dtype == torch.float32:
            # The Q-value head is a batched matrix-vector product, which fp32 bmm runs far from
            # peak on CPU: multiply-and-sum runs forward and backward 2-3x faster there. In bf16
            # (autocast) bmm is the faster one, and on GPU bmm is one kernel where this is three.
            return (x * weight.transpose(1, 2)).sum(-1, keepdim=True) + bias
        return torch.baddbmm(bias, x, weight)


class EnsembleCritic(nn.Module):
    """Q_1..Q_E(s, a) computed together: returns shape (E, batch)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...] = (256, 256),
        ensemble_size: int = 2,
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        self.ensemble_size = ensemble_size
        layers: list[nn.Module] = []
        last = obs_dim + act_dim
        for width in hidden:
            layers.append(EnsembleLinear(last, width, ensemble_size))
            if layer_norm:
                layers.append(nn.LayerNorm(width))
            layers.append(nn.ReLU(inplace=True))
            last = width
        layers.append(EnsembleLinear(last, 1, ensemble_size))
        self.net = nn.Sequential(*layers)

    def forward(
        self, obs: Tensor, action: Tensor, members: int | None = None, frozen: bool = False
    ) -> Tensor:
        """Q-values of the first `members` critics (all by default): shape (members, batch).

        `frozen`: the critic as a fixed function of (obs, action), its weights out of the graph,
        so that an actor's loss and the critic's own can share one backward pass (SAC)."""
        x = torch.cat([obs, action], dim=-1)
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(members or self.ensemble_size, -1, -1)
        if not frozen:
            return self.net(x).squeeze(-1)
        for layer in self.net:
            if isinstance(layer, EnsembleLinear):
                x = layer(x, frozen=True)
            elif isinstance(layer, nn.LayerNorm):
                weight, bias = layer.weight, layer.bias
                x = nn.functional.layer_norm(
                    x, layer.normalized_shape, weight.detach(), bias.detach(), layer.eps
                )
            else:
                x = layer(x)
        return x.squeeze(-1)


def gaussian(mean: Tensor, std: Tensor) -> Normal:
    """Normal(mean, std) without torch's argument checks: they read a device value back to the
    host at every construction and log_prob (a sync per call, and an error inside a CUDA graph);
    std is positive by construction (an exponential) wherever this is called. Draw from it with
    rsample() (under no_grad where no gradient is wanted): sample() calls torch.normal(mean, std),
    which checks std on the host too."""
    return Normal(mean, std, validate_args=False)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging target <- (1 - tau) target + tau source, with one fused foreach call."""
    with torch.no_grad():
        target_params = list(target.parameters())
        source_params = list(source.parameters())
        torch._foreach_lerp_(target_params, source_params, tau)  # type: ignore[arg-type]


def make_adam(params: list[nn.Parameter] | nn.Module, lr: float | Tensor) -> torch.optim.Adam:
    """Adam with the fused implementation: one kernel per parameter does the whole update, on
    CPU and CUDA (about 5% more TD3+BC steps/s than foreach on a 2-core CPU). Same maths as
    torch's default Adam. A 0-d tensor `lr` on the parameters' device may be changed in place
    between steps (a schedule), also inside a CUDA graph."""
    if isinstance(params, nn.Module):
        params = list(params.parameters())
    return torch.optim.Adam(params, lr=lr, fused=True)


def grad_norm(module: nn.Module) -> Tensor:
    """Global L2 norm of `module`'s gradients as a 0-d tensor: read after backward() and returned
    with the losses, so the training loop syncs with the device only when it logs."""
    return grad_norms(module)[0]


def grad_norms(*modules: nn.Module) -> list[Tensor]:
    """`grad_norm` of each module, from one fused norm over all their gradients (one kernel
    instead of one per tensor)."""
    grads = [[p.grad for p in module.parameters() if p.grad is not None] for module in modules]
    flat = [g for group in grads for g in group]
    norms = torch._foreach_norm(flat) if flat else ()
    out: list[Tensor] = []
    start = 0
    for group in grads:
        part = norms[start : start + len(group)]
        start += len(group)
        out.append(torch.linalg.vector_norm(torch.stack(part)).detach() if part else torch.zeros(()))
    return out


def q_stats(q: Tensor, prefix: str = "q") -> dict[str, Tensor]:
    """Mean, std, min and max of Q-values as detached 0-d tensors (no host round trip)."""
    q = q.detach()
    return {
        f"{prefix}_mean": q.mean(),
        f"{prefix}_std": q.std(),
        f"{prefix}_min": q.min(),
        f"{prefix}_max": q.max(),
    }
