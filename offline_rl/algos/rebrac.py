"""ReBRAC: Tarasov, Kurenkov, Nikulin & Kolesnikov, "Revisiting the Minimalist Approach to
Offline Reinforcement Learning", NeurIPS 2023. TD3+BC with behaviour regularisation in both the
actor and the critic, LayerNorm critics, deeper networks and larger batches.

Update rule (paper Alg. 1 / CORL `rebrac.py`):
    critic:  y = r + gamma (1 - d) [min_i Q'_i(s', a') - beta_2 ||a' - a'_data||^2],
             a' = clip(pi'(s') + clip(eps, -c, c), -1, 1),  a'_data = the dataset's next action
    actor (every `policy_freq` critic steps):
             minimise  beta_1 ||pi(s) - a||^2 - lambda min_i Q_i(s, pi(s)),
             lambda = 1 / mean|min_i Q_i(s, pi(s))| (stop-gradient; 1 when normalize_q is off)
    targets: Polyak averaging of actor and critics with `tau` after each actor step.
Defaults are the paper's / CORL's: actor_bc_coef (beta_1) 1.0, critic_bc_coef (beta_2) 0.01, 3x256
networks, LayerNorm in the critics only, lr 1e-3 (the top-level `lr` default), gamma 0.99,
tau 0.005, policy noise 0.2 clipped at 0.5, policy_freq 2. The paper tunes beta_1/beta_2 per
dataset (its appendix table); sweep them with `dvc exp run -S algos.rebrac.actor_bc_coef=...`.
Deviations: the batch size is the shared `train.batch_size` (256 by default; the paper uses 1024:
set train.batch_size=1024 to match); PyTorch's default initialisation instead of Flax's
lecun-normal; at an episode's final (truncated) step the dataset has no next action and the
step's own action stands in for it (CORL's buffer takes the next row, which starts another
episode); the twin critics run as one batched ensemble network.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from offline_rl.actors import DeterministicActor
from offline_rl.algos.base import load_parts, parts_state
from offline_rl.algos.config import ReBRACConfig
from offline_rl.networks import EnsembleCritic, make_adam, soft_update
from offline_rl.seeds import SeedNoise
from transitions.loader import Batch


class ReBRAC:
    PARTS: ClassVar[tuple[str, ...]] = (
        "actor",
        "critic",
        "actor_target",
        "critic_target",
        "actor_opt",
        "critic_opt",
        "noise",
    )

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        config: ReBRACConfig,
        device: torch.device,
        seeds: Sequence[int] = (0,),
    ) -> None:
        self.config, self.seeds = config, len(seeds)
        self.actor = DeterministicActor(
            obs_dim, act_dim, config.hidden, config.actor_layer_norm, seeds=self.seeds
        ).to(device)
        self.critic = EnsembleCritic(
            obs_dim, act_dim, config.hidden, layer_norm=config.critic_layer_norm, seeds=self.seeds
        ).to(device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = make_adam(self.actor, config.lr("actor_lr"))
        self.critic_opt = make_adam(self.critic, config.lr("critic_lr"))
        self.noise = SeedNoise(seeds, device)
        self.step = 0

    def td_target(self, batch: Batch, next_actions: Tensor, smoothing: bool = True) -> Tensor:
        """r + gamma (1 - d) [min_i Q'_i(s', a') - beta_2 ||a' - a'_data||^2]: (S, B)."""
        cfg = self.config
        next_action = self.actor_target(batch.next_observations)
        if smoothing:
            noise = self.noise.randn(batch.actions.shape[1:]) * cfg.policy_noise
            next_action = next_action + noise.clamp(-cfg.noise_clip, cfg.noise_clip)
        next_action = next_action.clamp(-1.0, 1.0)
        next_penalty = (next_action - next_actions).square().sum(-1)
        next_q = self.critic_target(batch.next_observations, next_action).min(0).values
        next_value = next_q - cfg.critic_bc_coef * next_penalty
        return batch.rewards + cfg.discount * (1.0 - batch.dones) * next_value

    def update(self, batch: Batch) -> dict[str, Tensor]:
        cfg = self.config
        if batch.next_actions is None:
            raise ValueError("ReBRAC needs the dataset's next actions: sample from offline data")
        self.step += 1
        with torch.no_grad():
            target = self.td_target(batch, batch.next_actions)
        q = self.critic(batch.observations, batch.actions)
        critic_loss = (q - target).square().mean(-1).sum(0)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.sum().backward()
        self.critic_opt.step()

        metrics = {"critic_loss": critic_loss.detach(), "q_mean": q.detach().mean((0, 2))}
        if self.step % cfg.policy_freq == 0:
            pi = self.actor(batch.observations)
            q_pi = self.critic(batch.observations, pi).min(0).values
            lmbda = 1.0 / q_pi.abs().mean(-1, keepdim=True).detach() if cfg.normalize_q else 1.0
            bc_penalty = (pi - batch.actions).square().sum(-1).mean(-1)
            actor_loss = cfg.actor_bc_coef * bc_penalty - (lmbda * q_pi).mean(-1)
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.sum().backward(inputs=list(self.actor.parameters()))  # not the critic's
            self.actor_opt.step()
            soft_update(self.critic_target, self.critic, cfg.tau)
            soft_update(self.actor_target, self.actor, cfg.tau)
            metrics |= {"actor_loss": actor_loss.detach(), "bc_penalty": bc_penalty.detach()}
        return metrics

    @torch.no_grad()
    def validation_losses(self, batch: Batch) -> dict[str, Tensor]:
        if batch.next_actions is None:
            raise ValueError("ReBRAC needs the dataset's next actions: sample from offline data")
        q = self.critic(batch.observations, batch.actions)
        target = self.td_target(batch, batch.next_actions, smoothing=False)
        return {
            "td_error": (q - target).square().mean((0, 2)),
            "action_mse": (self.actor(batch.observations) - batch.actions).square().mean((1, 2)),
        }

    def graph_key(self) -> bool:
        """Whether the next update also trains the actor (one CUDA graph per branch)."""
        return (self.step + 1) % self.config.policy_freq == 0

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        return self.actor(obs)

    def state_dict(self) -> dict[str, Any]:
        return parts_state(self, self.PARTS)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_parts(self, self.PARTS, state)
