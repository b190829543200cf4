"""Networks shared by every algorithm, each holding the networks of S training seeds at once.

Every layer is an ensemble: its parameters have a leading member dimension and one batched matmul
runs all members. An actor of S seeds has S members and maps observations (S, B, obs_dim) to
actions (S, B, act_dim), row k of seed k through seed k's weights; a critic of E networks per seed
has E * S members, stored member-major (all seeds' first critics, then their second ones) and
returns (E, S, B). A single-seed run is S = 1, the same code. Parameters of one seed are
`tensor.unflatten(0, (-1, S))[:, k]` (offline_rl/seeds.py builds and splits them). The actors,
built from these layers, are in offline_rl/actors.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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
        if weight.shape[0] == 1:
            # One member (one training seed): LayerNorm's own gain and bias, applied inside its
            # kernel, forward and backward; 2.5-3x faster on CPU than a separate addcmul and its
            # backward (docs/performance.md).
            return F.layer_norm(x, x.shape[-1:], weight.view(-1), bias.view(-1))
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


class EnsembleDiscreteCritic(nn.Module):
    """Q_1..Q_E(s, .) over n discrete actions for each of S seeds: one pass gives every action's
    value, (E, S, B, n); members are stored member-major like EnsembleCritic's."""

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden: tuple[int, ...] = (256, 256),
        ensemble_size: int = 1,
        seeds: int = 1,
    ) -> None:
        super().__init__()
        self.ensemble_size, self.seeds = ensemble_size, seeds
        self.net = ensemble_mlp(obs_dim, num_actions, hidden, ensemble_size * seeds)

    def forward(self, obs: Tensor) -> Tensor:
        """Every action's Q-value, (E, S, B, n), for observations (S, B, obs_dim)."""
        x = obs.unsqueeze(0).expand(self.ensemble_size, *obs.shape).flatten(0, 1)
        q = self.net(x)
        return q.view(self.ensemble_size, *obs.shape[:-1], q.shape[-1])


def values_at(values: Tensor, actions: Tensor) -> Tensor:
    """The taken actions' entries (..., B) of per-action values (..., B, n) (Q-values of a
    critic ensemble (E, S, B, n), a policy's log-probabilities (S, B, n)), the actions given as
    indices (S, B) (float32 in a batch: exact integers)."""
    index = actions.long().expand(values.shape[:-1]).unsqueeze(-1)
    return values.gather(-1, index).squeeze(-1)


def hard_update(target: nn.Module, source: nn.Module) -> None:
    """target <- source, every parameter copied (DQN's periodic target network update)."""
    with torch.no_grad():
        torch._foreach_copy_(list(target.parameters()), list(source.parameters()))


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


def keep_lr_tensor(optimizer: torch.optim.Optimizer, lr: Tensor) -> None:
    """After `optimizer.load_state_dict`, which brings its own copy of the learning rate, take the
    saved rate into `lr` and step with that device tensor again, the one a schedule writes in
    place (also inside a CUDA graph)."""
    group = optimizer.param_groups[0]
    lr.copy_(group["lr"])
    group["lr"] = lr


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


def clip_grad_norm_per_seed(module: nn.Module, seeds: int, max_norm: float) -> Tensor:
    """torch's clip_grad_norm_ for each seed alone: a seed's gradients are scaled by
    max_norm / (norm + 1e-6) where their global L2 norm exceeds max_norm. Returns the norms
    before clipping, (S,), without a host sync."""
    norms = grad_norm(module, seeds)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0).view(1, seeds, 1)
    for p in module.parameters():
        if p.grad is not None:
            p.grad.view(-1, seeds, p.grad[0].numel()).mul_(scale)
    return norms


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
