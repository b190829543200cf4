"""Networks shared by every algorithm, each holding the networks of S training seeds at once.

Every layer is an ensemble: its parameters have a leading member dimension and one batched matmul
runs all members. An actor of S seeds has S members and maps observations (S, B, obs_dim) to
actions (S, B, act_dim), row k of seed k through seed k's weights; a critic of E networks per seed
has E * S members, stored member-major (all seeds' first critics, then their second ones) and
returns (E, S, B). A single-seed run is S = 1, the same code. Parameters of one seed are
`tensor.unflatten(0, (-1, S))[:, k]` (offline_rl/seeds.py builds and splits them). The actors,
built from these layers, are in offline_rl/actors.py.

What reads the observation is chosen by its layout (`observation_mlp`): an MLP for vectors; for a
uint8 image (transitions/spaces.py), a CNN (`EnsembleImageEncoder`) in front of that MLP, which
takes the pixels' bytes as stored and scales them by 1/255 itself, on the device.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import optimizer as _optimizer_hooks

from transitions.spaces import ObservationLayout

# What an algorithm's networks are built for: an observation width (vectors), or the layout,
# which says when the rows are an image's pixels.
Observations = int | ObservationLayout


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


class EnsembleConv2d(nn.Module):
    """`members` independent 2-D convolutions run as one grouped convolution over member-major
    channels (B, members * in, H, W) -> (B, members * out, H', W'). The parameters keep the
    member dimension first, (members, out, in, k, k), like every ensemble layer's, so that the
    seeds' networks stack and split as the others do (offline_rl/seeds.py)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, members: int):
        super().__init__()
        self.stride, self.members = stride, members
        self.weight = nn.Parameter(torch.empty(members, out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.empty(members, out_channels))
        # nn.Conv2d's initial distribution (its kaiming-uniform, a = sqrt(5), is this bound).
        bound = 1.0 / math.sqrt(in_channels * kernel * kernel)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight.flatten(0, 1)  # a view: members outermost, as the groups read it
        return F.conv2d(x, weight, self.bias.flatten(), self.stride, groups=self.members)


class EnsembleImageEncoder(nn.Module):
    """A CNN per member over image rows (members, B, H * W * C) of raw pixels (the stored uint8,
    or the same values as floats), scaled by 1/255 here, on the device: the dataset stays bytes
    and only a batch is ever float. Returns (members, B, features).

    Images of side 36 or more take Nature DQN's convolutions (Mnih et al., 2015: 32 8x8 stride 4,
    64 4x4 stride 2, 64 3x3 stride 1); smaller ones, such as MiniGrid's 7x7 symbolic view, which
    those strides would shrink to nothing, the rl-starter-files' network for MiniGrid (16 2x2, 2x2
    max-pool, 32 2x2, 64 2x2). Those small images are symbolic codes, not light (MiniGrid's object,
    colour and state indices, 0..10 out of 255): after the 1/255 they are standardised per image
    (zero mean, unit variance over H, W, C, no parameters), without which they reach the first
    convolution at 1/25 of its bias's scale, and the DQN measured no return at all in 8k steps on
    MiniGrid-Empty-5x5. Members are convolution groups: one conv runs them all, member m reading
    only its own channels, each initialised as a lone nn.Conv2d would be."""

    def __init__(self, image: tuple[int, int, int], members: int) -> None:
        super().__init__()
        self.image, self.members = image, members
        h, w, c = image
        m = members
        layers: list[nn.Module]
        self.standardise = min(h, w) < 36
        if not self.standardise:
            layers = [
                EnsembleConv2d(c, 32, 8, 4, m),
                nn.ReLU(inplace=True),
                EnsembleConv2d(32, 64, 4, 2, m),
                nn.ReLU(inplace=True),
                EnsembleConv2d(64, 64, 3, 1, m),
                nn.ReLU(inplace=True),
            ]
        else:
            if min(h, w) < 4:
                raise ValueError(f"image {image}: too small for the encoder (at least 4x4)")
            layers = [
                EnsembleConv2d(c, 16, 2, 1, m),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
                EnsembleConv2d(16, 32, 2, 1, m),
                nn.ReLU(inplace=True),
                EnsembleConv2d(32, 64, 2, 1, m),
                nn.ReLU(inplace=True),
            ]
        self.convs = nn.Sequential(*layers)
        with torch.no_grad():
            out = self.convs(torch.zeros(1, c * m, h, w))
        self.features = int(np.prod(out.shape[1:])) // m

    def forward(self, x: Tensor) -> Tensor:
        members, batch = x.shape[0], x.shape[1]
        if members != self.members:
            # Fewer rows than members would need a slice of every grouped weight; no caller does.
            raise ValueError(f"image encoder of {self.members} members given {members}")
        h, w, c = self.image
        # (M, B, H*W*C) bytes -> (B, M*C, H, W) floats in [0, 1]: member-major channels, as the
        # groups expect; the conversion happens here, on the batch only.
        pixels = x.reshape(members, batch, h, w, c).permute(1, 0, 4, 2, 3)
        pixels = pixels.reshape(batch, members * c, h, w).float() * (1.0 / 255.0)
        if self.standardise:
            per_image = pixels.reshape(batch, members, c * h * w)
            pixels = F.layer_norm(per_image, per_image.shape[-1:]).reshape(pixels.shape)
        out = self.convs(pixels)  # (B, M * F_c, h', w')
        return out.reshape(batch, members, -1).transpose(0, 1)


def observation_mlp(
    observations: Observations,
    out_dim: int | None,
    hidden: tuple[int, ...],
    members: int,
    layer_norm: bool = False,
) -> nn.Sequential:
    """`ensemble_mlp` reading observations as their layout says: vectors directly; an image
    through an `EnsembleImageEncoder` first (its features are the MLP's input)."""
    if isinstance(observations, int) or observations.image is None:
        width = observations if isinstance(observations, int) else observations.obs_dim
        return ensemble_mlp(width, out_dim, hidden, members, layer_norm)
    encoder = EnsembleImageEncoder(observations.image, members)
    mlp = ensemble_mlp(encoder.features, out_dim, hidden, members, layer_norm)
    return nn.Sequential(encoder, *mlp)


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
        obs_dim: Observations,
        num_actions: int,
        hidden: tuple[int, ...] = (256, 256),
        ensemble_size: int = 1,
        seeds: int = 1,
    ) -> None:
        super().__init__()
        self.ensemble_size, self.seeds = ensemble_size, seeds
        self.net = observation_mlp(obs_dim, num_actions, hidden, ensemble_size * seeds)

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


def adam_step(optimizer: torch.optim.Adam) -> None:
    """`optimizer.step()` for a fused CPU Adam from `make_adam`: the same kernel on the same state,
    called without torch.optim's per-step bookkeeping around it (hooks, a profiler record, state
    and capture checks: ~0.1 ms a step, 2% of a behaviour SAC step). The first step, which makes
    the state, and every other set-up (CUDA, hooks, amsgrad, tensor betas, several parameter
    groups or dtypes) take `optimizer.step()` itself."""
    group = optimizer.param_groups[0]
    params = [p for p in group["params"] if p.grad is not None]
    states = [optimizer.state.get(p) for p in params]
    plain = (
        len(optimizer.param_groups) == 1
        and group["fused"]
        and not (group["amsgrad"] or group["maximize"] or group["differentiable"])
        and not group["decoupled_weight_decay"]
        and not any(isinstance(beta, Tensor) for beta in group["betas"])
        and all(states)
        and all(p.device.type == "cpu" and p.dtype == params[0].dtype for p in params)
        and not (optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks)
        and not _optimizer_hooks._global_optimizer_pre_hooks
        and not _optimizer_hooks._global_optimizer_post_hooks
    )
    if not plain or not params:
        optimizer.step()
        return
    steps = [state["step"] for state in states]  # type: ignore[index]
    with torch.no_grad():  # as Optimizer.step: in place on leaves that require grad
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            params,
            [p.grad for p in params],  # type: ignore[misc]
            [state["exp_avg"] for state in states],  # type: ignore[index]
            [state["exp_avg_sq"] for state in states],  # type: ignore[index]
            [],
            steps,
            amsgrad=False,
            lr=group["lr"],
            beta1=group["betas"][0],
            beta2=group["betas"][1],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
        )


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
