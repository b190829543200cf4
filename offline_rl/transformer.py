"""A GPT-style causal transformer holding the weights of S training seeds at once, as every network
here does (offline_rl/networks.py): inputs (S, B, T, width), seed k's rows through seed k's weights.

Blocks are pre-LayerNorm (GPT-2, minGPT, the Decision Transformer's and CORL's): x + attention(
LN(x)), then x + MLP(LN(x)), the MLP 4x wide with GELU. Attention is causal and skips padded keys;
it runs as torch's scaled_dot_product_attention (flash or memory-efficient kernels on a GPU) except
while training with attention dropout: torch draws that dropout from the global generator, and
here every random number of an update comes from the seed's own stream (`SeedNoise`, so that seed
k trains as it would alone), so that case computes the same attention explicitly with the seed's
dropout mask. Every dropout is inverted (kept values scaled by 1 / (1 - p)), as torch's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from offline_rl.networks import EnsembleLayerNorm, EnsembleLinear
from offline_rl.seeds import SeedNoise


def dropout(x: Tensor, p: float, noise: SeedNoise | None) -> Tensor:
    """Inverted dropout of x (S, ...) with each seed's mask from its own stream; none without
    `noise` (acting, validation) or at p = 0."""
    if noise is None or p == 0.0:
        return x
    return x * noise.keep_mask(x.shape[1:], p, x.dtype)


class EnsembleEmbedding(nn.Module):
    """A lookup table per seed: indices (S, ...) -> (S, ..., width), row k through seed k's table."""

    def __init__(self, count: int, width: int, members: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, count, width))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, index: Tensor) -> Tensor:
        members, count, width = self.weight.shape
        offsets = torch.arange(members, device=index.device) * count
        flat = (index + offsets.view(-1, *([1] * (index.dim() - 1)))).flatten()
        rows = torch.index_select(self.weight.view(members * count, width), 0, flat)
        return rows.view(*index.shape, width)


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, members: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not a multiple of heads {heads}")
        self.heads = heads
        self.qkv = EnsembleLinear(width, 3 * width, members)
        self.proj = EnsembleLinear(width, width, members)

    def forward(
        self, x: Tensor, allowed: Tensor, attention_dropout: float, noise: SeedNoise | None
    ) -> Tensor:
        """x (S, B, T, width); `allowed` (S * B, 1, T, T) bool: which keys each query attends."""
        seeds, batch, tokens, width = x.shape
        qkv = self.qkv(x.flatten(1, 2)).view(seeds * batch, tokens, 3, self.heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (S * B, heads, T, width / heads)
        if noise is None or attention_dropout == 0.0:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
            weights = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
            weights = dropout(weights.unflatten(0, (seeds, batch)), attention_dropout, noise)
            out = weights.flatten(0, 1) @ v
        out = out.transpose(1, 2).reshape(seeds, batch * tokens, width)
        return self.proj(out).view(seeds, batch, tokens, width)


class Block(nn.Module):
    def __init__(self, width: int, heads: int, members: int) -> None:
        super().__init__()
        self.attention_norm = EnsembleLayerNorm(width, members)
        self.attention = CausalSelfAttention(width, heads, members)
        self.mlp_norm = EnsembleLayerNorm(width, members)
        self.mlp_in = EnsembleLinear(width, 4 * width, members)
        self.mlp_out = EnsembleLinear(4 * width, width, members)

    def forward(
        self,
        x: Tensor,
        allowed: Tensor,
        attention_dropout: float,
        residual_dropout: float,
        noise: SeedNoise | None,
    ) -> Tensor:
        seeds, batch, tokens, width = x.shape
        normed = self.attention_norm(x.flatten(1, 2)).view_as(x)
        attended = self.attention(normed, allowed, attention_dropout, noise)
        x = x + dropout(attended, residual_dropout, noise)
        hidden = F.gelu(self.mlp_in(self.mlp_norm(x.flatten(1, 2))))
        mlp = self.mlp_out(hidden).view(seeds, batch, tokens, width)
        return x + dropout(mlp, residual_dropout, noise)


class EnsembleCausalTransformer(nn.Module):
    """`layers` blocks and a final LayerNorm."""

    def __init__(self, width: int, layers: int, heads: int, members: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(width, heads, members) for _ in range(layers))
        self.norm = EnsembleLayerNorm(width, members)

    def forward(
        self,
        x: Tensor,
        valid: Tensor,
        attention_dropout: float = 0.0,
        residual_dropout: float = 0.0,
        noise: SeedNoise | None = None,
    ) -> Tensor:
        """x (S, B, T, width), `valid` (S, B, T) bool (False: padding); dropout only with `noise`."""
        tokens = x.shape[2]
        causal = torch.ones(tokens, tokens, dtype=torch.bool, device=x.device).tril()
        # A query attends to earlier valid keys, and always to itself, so that a padded query
        # (whose output nothing reads) still has a key to attend to instead of a NaN row.
        eye = torch.eye(tokens, dtype=torch.bool, device=x.device)
        allowed = causal & (valid.flatten(0, 1)[:, None, None, :] | eye)
        for block in self.blocks:
            x = block(x, allowed, attention_dropout, residual_dropout, noise)
        return self.norm(x.flatten(1, 2)).view_as(x)


def gpt_init(module: nn.Module) -> None:
    """GPT-2's initial weights, which the Decision Transformer and CORL use: linear weights and
    embeddings N(0, 0.02), biases 0, LayerNorms 1 and 0."""
    for layer in module.modules():
        if isinstance(layer, EnsembleLinear):
            nn.init.normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, EnsembleEmbedding):
            nn.init.normal_(layer.weight, std=0.02)
