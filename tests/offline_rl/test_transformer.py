"""The per-seed causal transformer: no token reads a later one or a padded one, the explicit
attention taken while training with attention dropout is the same function as torch's
scaled-dot-product attention, and each seed's dropout masks are its own."""

from __future__ import annotations

import torch

from offline_rl.seeds import SeedNoise
from offline_rl.transformer import EnsembleCausalTransformer

SEEDS, BATCH, TOKENS, WIDTH = 2, 3, 7, 16


def model() -> EnsembleCausalTransformer:
    torch.manual_seed(0)
    return EnsembleCausalTransformer(WIDTH, layers=2, heads=2, members=SEEDS)


def test_no_token_reads_a_later_or_a_padded_one() -> None:
    net = model()
    x = torch.randn(SEEDS, BATCH, TOKENS, WIDTH)
    valid = torch.ones(SEEDS, BATCH, TOKENS, dtype=torch.bool)
    valid[:, :, :2] = False  # two padded tokens at the start
    out = net(x, valid)
    changed = x.clone()
    changed[:, :, -1] += 1.0  # the last token
    changed[:, :, :2] = torch.randn(SEEDS, BATCH, 2, WIDTH)  # the padding
    again = net(changed, valid)
    torch.testing.assert_close(again[:, :, 2:-1], out[:, :, 2:-1])
    assert not torch.allclose(again[:, :, -1], out[:, :, -1])


def test_explicit_attention_is_torchs_attention() -> None:
    """With a dropout probability too small to drop anything, the explicit path (taken when
    training with attention dropout) gives what scaled_dot_product_attention gives."""
    net = model()
    x = torch.randn(SEEDS, BATCH, TOKENS, WIDTH)
    valid = torch.rand(SEEDS, BATCH, TOKENS) > 0.3
    fused = net(x, valid)
    explicit = net(x, valid, attention_dropout=1e-9, noise=SeedNoise([0, 1], torch.device("cpu")))
    torch.testing.assert_close(explicit, fused, rtol=1e-5, atol=1e-5)


def test_dropout_masks_are_each_seeds_own() -> None:
    cpu = torch.device("cpu")
    together = SeedNoise([4, 9], cpu).keep_mask((500, 40), 0.1)
    alone = SeedNoise([9], cpu).keep_mask((500, 40), 0.1)
    assert torch.equal(together[1], alone[0])
    assert torch.equal(together.unique(), torch.tensor([0.0, 1.0 / 0.9]))
    kept = (together > 0).float().mean().item()
    assert abs(kept - 0.9) < 0.01  # 40,000 draws: the standard error is 0.0015
