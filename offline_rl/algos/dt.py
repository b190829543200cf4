"""Decision Transformer (Chen et al., 2021): a causal transformer over the tokens (return-to-go,
state, action) of each step predicts the step's action from the tokens up to its state; acting, it
is given a target return and conditions on what is left of it (offline_rl/context.py).

The paper's and CORL's settings: context 20, 3 layers, 1 head, embedding 128, dropout 0.1 on the
embeddings, attention and residuals, AdamW (lr 1e-4, weight decay 1e-4) with a linear warm-up over
10,000 updates, gradient norm clipped at 0.25, GPT-2 initial weights, tanh actions, timestep
embeddings up to 1,000, returns-to-go scaled by 0.001, target returns Hopper 3,600, HalfCheetah
6,000, Walker2d 5,000 (the paper's appendix). The loss is the actions' mean squared error over
the windows' real steps (the paper's; CORL also counts padding in the mean). Deviations: windows
end at a uniformly drawn step (offline_rl/windows.py); the gradient clipping is per training seed;
the batch is `train.batch_size` (the paper: 64; CORL's Hopper configs: 4096 at lr 8e-4).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from core.config import ConfigError
from offline_rl.algos.base import load_parts, parts_state
from offline_rl.algos.config import DTConfig
from offline_rl.context import ContextActor
from offline_rl.networks import (
    EnsembleLayerNorm,
    EnsembleLinear,
    clip_grad_norm_per_seed,
    keep_lr_tensor,
)
from offline_rl.seeds import SeedNoise
from offline_rl.transformer import EnsembleCausalTransformer, EnsembleEmbedding, dropout, gpt_init
from transitions.loader import WindowBatch
from transitions.metadata import TransitionsMeta

# The Decision Transformer paper's target returns (its first, higher one), by environment family.
TARGET_RETURNS = {"Hopper": 3600.0, "HalfCheetah": 6000.0, "Walker2d": 5000.0}


class DecisionTransformerNet(nn.Module):
    """Windows (S, B, K, ...) -> predicted actions (S, B, K, act_dim), each from the tokens up to
    its step's state."""

    def __init__(self, obs_dim: int, act_dim: int, config: DTConfig, seeds: int) -> None:
        super().__init__()
        width = config.width
        self.config = config
        self.timestep = EnsembleEmbedding(config.max_timestep, width, seeds)
        self.return_in = EnsembleLinear(1, width, seeds)
        self.state_in = EnsembleLinear(obs_dim, width, seeds)
        self.action_in = EnsembleLinear(act_dim, width, seeds)
        self.embedding_norm = EnsembleLayerNorm(width, seeds)
        self.transformer = EnsembleCausalTransformer(width, config.layers, config.heads, seeds)
        self.action_out = EnsembleLinear(width, act_dim, seeds)
        gpt_init(self)

    def forward(self, window: WindowBatch, noise: SeedNoise | None = None) -> Tensor:
        cfg = self.config
        seeds, batch, steps = window.mask.shape
        time = self.timestep(window.timesteps.clamp(max=cfg.max_timestep - 1))  # (S, B, K, W)

        def embed(layer: EnsembleLinear, x: Tensor) -> Tensor:
            return layer(x.flatten(1, 2)).view(seeds, batch, steps, -1) + time

        returns = (window.returns_to_go * cfg.return_scale).unsqueeze(-1)
        tokens = torch.stack(  # (S, B, K, 3, W) -> (S, B, 3K, W): R_1, s_1, a_1, R_2, ...
            [
                embed(self.return_in, returns),
                embed(self.state_in, window.observations),
                embed(self.action_in, window.actions),
            ],
            dim=3,
        ).flatten(2, 3)
        tokens = self.embedding_norm(tokens.flatten(1, 2)).view_as(tokens)
        tokens = dropout(tokens, cfg.embedding_dropout, noise)
        valid = window.mask.repeat_interleave(3, dim=-1)
        out = self.transformer(tokens, valid, cfg.attention_dropout, cfg.residual_dropout, noise)
        states = out.unflatten(2, (steps, 3))[:, :, :, 1]  # the state tokens: (S, B, K, W)
        return torch.tanh(self.action_out(states.flatten(1, 2))).view(seeds, batch, steps, -1)


class DecisionTransformer:
    PARTS: ClassVar[tuple[str, ...]] = ("model", "model_opt", "updates", "noise")

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        config: DTConfig,
        device: torch.device,
        seeds: Sequence[int] = (0,),
    ) -> None:
        self.config, self.seeds = config, len(seeds)
        self.context = config.context  # what the window sampler and evaluation read
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.model = DecisionTransformerNet(obs_dim, act_dim, config, self.seeds).to(device)
        # Update count and learning rate on the device: the warm-up advances in a CUDA graph too.
        self.updates = torch.zeros((), dtype=torch.int64, device=device)
        self.lr = torch.tensor(config.lr("learning_rate"), device=device)
        self.model_opt = torch.optim.AdamW(
            self.model.parameters(), lr=self.lr, weight_decay=config.weight_decay, fused=True
        )
        self.noise = SeedNoise(seeds, device)  # dropout masks, each seed's from its own stream

    def action_error(self, window: WindowBatch, noise: SeedNoise | None = None) -> Tensor:
        """Each seed's mean squared error of the predicted actions over the real steps, (S,)."""
        error = (self.model(window, noise) - window.actions).square().mean(-1)
        mask = window.mask.float()
        return (error * mask).sum((1, 2)) / mask.sum((1, 2)).clamp(min=1.0)

    def update(self, batch: WindowBatch) -> dict[str, Tensor]:
        warmup = max(self.config.warmup_steps, 1)
        self.lr.copy_(self.config.lr("learning_rate") * ((self.updates + 1) / warmup).clamp(max=1))
        loss = self.action_error(batch, self.noise)
        self.model_opt.zero_grad(set_to_none=True)
        loss.sum().backward()  # per-seed losses: each seed's gradient is its own
        norm = clip_grad_norm_per_seed(self.model, self.seeds, self.config.clip_grad)
        self.model_opt.step()
        self.updates += 1
        return {
            "actor_loss": loss.detach(),
            "grad_norm/actor": norm,
            "lr": self.lr.expand(self.seeds).clone(),
        }

    @torch.no_grad()
    def validation_losses(self, batch: WindowBatch) -> dict[str, Tensor]:
        """Each window's last action as the policy would choose it, against the data's: the
        squared error per row, as BC's `action_mse`."""
        error = (self.act(batch) - batch.actions[:, :, -1]).square().mean(-1)
        return {"action_mse": error.mean(1)}

    @torch.no_grad()
    def act(self, window: WindowBatch, deterministic: bool = True) -> Tensor:
        """The action at each window's last step, (S, n, act_dim)."""
        return self.model(window)[:, :, -1]

    def context_actor(self, meta: TransitionsMeta, device: torch.device) -> ContextActor:
        """The evaluation policy's history keeper, asked for `target_return(config, meta)`."""
        units = meta.reward_scale  # environment returns -> the file's, which the model reads
        return ContextActor(
            self.act,
            self.seeds,
            self.context,
            self.obs_dim,
            self.act_dim,
            target_return(self.config, meta) * units,
            units,
            device,
            self.config.max_timestep,
        )

    def state_dict(self) -> dict[str, Any]:
        return parts_state(self, self.PARTS)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_parts(self, self.PARTS, state)
        keep_lr_tensor(self.model_opt, self.lr)  # the warm-up's


def target_return(config: DTConfig, meta: TransitionsMeta, key: str = "algos.dt") -> float:
    """The return asked for at evaluation, in the environment's units; fails in one line where the
    data cannot be conditioned on returns as the model was trained."""
    if meta.return_to_go_discount != 1.0:
        raise ConfigError(
            f"{key}: the Decision Transformer conditions on undiscounted returns, but the file's "
            f"returns_to_go are discounted by {meta.return_to_go_discount}; set "
            "preprocess.return_to_go_discount: 1.0"
        )
    if meta.reward_shift != 0.0:
        raise ConfigError(
            f"{key}: rewards shifted by {meta.reward_shift} (preprocess.reward_shift) make the "
            "return to go depend on the episode's remaining length; use reward_shift: 0"
        )
    if config.target_return is not None:
        return config.target_return
    family = meta.env_id.split("-")[0]
    if family not in TARGET_RETURNS:
        raise ConfigError(
            f"{key}.target_return: no published target return for {meta.env_id}; set one (for "
            "example the best episode return of the data)"
        )
    return TARGET_RETURNS[family]
