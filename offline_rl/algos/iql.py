"""IQL: Kostrikov, Nair & Levine, "Offline Reinforcement Learning with Implicit Q-Learning",
ICLR 2022.

Update rule (paper Alg. 1 / CORL `iql.py`), every step:
    value:   minimise  L_e(min_i Q'_i(s, a) - V(s)),  L_e(u) = |e - 1(u < 0)| u^2, e = `expectile`
             (the paper's tau; here `tau` is the Polyak rate, as in every algorithm)
    critic:  minimise  (r + gamma (1 - d) V(s') - Q_i(s, a))^2  for both Q_i
    actor:   maximise  min(exp(beta (min_i Q'_i(s, a) - V(s))), 100) log pi(a | s)  (AWR)
    targets: Polyak averaging of the critics with `tau`.
Defaults are the paper's MuJoCo ones (as in CORL): expectile 0.7, beta 3.0, tau 0.005,
gamma 0.99, 256x256 MLPs (the paper's lr 3e-4 for all three nets is `-S lr=3e-4`: the rates
left null follow the top-level `lr`, 1e-3), the actor's learning rate decayed to zero
with a cosine over `actor_lr_cosine_steps` (CORL: the run's 1e6 steps). The paper also scales
rewards by 1000 / (max - min episode return): that is `preprocess.reward_normalization:
return_range`, a data setting, not an algorithm one.
The actor is CORL's Gaussian: N(tanh(f(s)), exp(log_std)) with a state-independent log_std; act()
returns its mean (deterministic) or a sample clipped to [-1, 1]. `deterministic_actor: true`
switches to CORL's deterministic variant (loss: weighted squared error to the dataset action).
Deviations: the twin critics run as one batched ensemble network (arithmetic order only); the
cosine schedule is computed from the update count instead of torch's CosineAnnealingLR, which
restarts after T_max steps where CORL's run ends.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from offline_rl.actors import DeterministicActor, GaussianActor
from offline_rl.algos.base import load_parts, parts_state
from offline_rl.algos.config import IQLConfig
from offline_rl.networks import EnsembleCritic, ensemble_mlp, keep_lr_tensor, make_adam, soft_update
from offline_rl.seeds import SeedNoise
from offline_rl.side_stream import SideStream
from transitions.loader import Batch

EXP_ADV_MAX = 100.0  # the paper's clip on the advantage weight


class IQL:
    PARTS: ClassVar[tuple[str, ...]] = (
        "actor",
        "critic",
        "critic_target",
        "value",
        "actor_opt",
        "critic_opt",
        "value_opt",
        "updates",
        "noise",
    )

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        config: IQLConfig,
        device: torch.device,
        seeds: Sequence[int] = (0,),
    ) -> None:
        self.config, self.seeds = config, len(seeds)
        self.actor: nn.Module = (
            DeterministicActor(obs_dim, act_dim, config.hidden, seeds=self.seeds)
            if config.deterministic_actor
            else GaussianActor(obs_dim, act_dim, config.hidden, seeds=self.seeds)
        ).to(device)
        self.critic = EnsembleCritic(obs_dim, act_dim, config.hidden, seeds=self.seeds).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = ensemble_mlp(obs_dim, 1, config.hidden, self.seeds).to(device)
        # The update count and the actor's learning rate are device tensors, so that the cosine
        # schedule advances inside a replayed CUDA graph as it does eagerly.
        self.updates = torch.zeros((), dtype=torch.int64, device=device)
        self.actor_lr = torch.tensor(config.lr("actor_lr"), device=device)
        self.actor_opt = make_adam(self.actor, self.actor_lr)
        self.critic_opt = make_adam(self.critic, config.lr("critic_lr"))
        self.value_opt = make_adam(self.value, config.lr("value_lr"))
        self.noise = SeedNoise(seeds, device)  # for act(deterministic=False) only
        self.critic_stream, self.actor_stream = SideStream(device), SideStream(device)

    def schedule_actor_lr(self) -> None:
        """Cosine decay from actor_lr to 0 over actor_lr_cosine_steps updates, then 0."""
        steps = self.config.actor_lr_cosine_steps
        if steps:
            progress = self.updates.clamp(max=steps) / steps
            self.actor_lr.copy_(
                self.config.lr("actor_lr") * 0.5 * (1.0 + torch.cos(math.pi * progress))
            )

    def v(self, obs: Tensor) -> Tensor:
        return self.value(obs).squeeze(-1)  # (S, B)

    def q_target(self, batch: Batch) -> Tensor:
        """The critic's regression target r + gamma (1 - d) V(s'): (S, B)."""
        next_v = self.v(batch.next_observations)
        return batch.rewards + self.config.discount * (1.0 - batch.dones) * next_v

    def actor_loss(self, batch: Batch, exp_adv: Tensor) -> Tensor:
        """Advantage-weighted regression, per seed: (S,)."""
        if isinstance(self.actor, GaussianActor):
            return -(exp_adv * self.actor.log_prob(batch.observations, batch.actions)).mean(-1)
        squared_error = (self.actor(batch.observations) - batch.actions).square().sum(-1)
        return (exp_adv * squared_error).mean(-1)

    def update(self, batch: Batch) -> dict[str, Tensor]:
        cfg = self.config
        # Given V(s'), Q'(s, a) and V(s) from before the step, the value, critic and actor steps
        # do not depend on each other: the critic's and the actor's run on side streams, beside
        # the value step, and so do the forward passes they start from.
        with self.critic_stream.branch(), torch.no_grad():
            q_target = self.q_target(batch)
        with self.actor_stream.branch(), torch.no_grad():
            target_q = self.critic_target(batch.observations, batch.actions).min(0).values
        v = self.v(batch.observations)
        self.critic_stream.join()  # before the value step changes the V that V(s') was read from
        self.actor_stream.join()
        diff = target_q - v
        advantage = diff.detach()

        with self.critic_stream.branch():
            q = self.critic(batch.observations, batch.actions)
            critic_loss = (q - q_target).square().mean(-1).sum(0)
            self.critic_opt.zero_grad(set_to_none=True)
            critic_loss.sum().backward()
            self.critic_opt.step()
            soft_update(self.critic_target, self.critic, cfg.tau)
            q_mean = q.detach().mean((0, 2))

        with self.actor_stream.branch():
            exp_adv = torch.exp(cfg.beta * advantage).clamp(max=EXP_ADV_MAX)
            actor_loss = self.actor_loss(batch, exp_adv)
            self.updates += 1
            self.schedule_actor_lr()
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.sum().backward()
            self.actor_opt.step()
            advantage_mean = advantage.mean(-1)

        weight = torch.where(diff < 0, 1.0 - cfg.expectile, cfg.expectile)
        value_loss = (weight * diff.square()).mean(-1)
        self.value_opt.zero_grad(set_to_none=True)
        value_loss.sum().backward()
        self.value_opt.step()
        self.critic_stream.join()
        self.actor_stream.join()
        return {
            "value_loss": value_loss.detach(),
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "q_mean": q_mean,
            "advantage_mean": advantage_mean,
        }

    @torch.no_grad()
    def validation_losses(self, batch: Batch) -> dict[str, Tensor]:
        q = self.critic(batch.observations, batch.actions)
        diff = self.critic_target(batch.observations, batch.actions).min(0).values
        diff = diff - self.v(batch.observations)
        weight = torch.where(diff < 0, 1.0 - self.config.expectile, self.config.expectile)
        return {
            "td_error": (q - self.q_target(batch)).square().mean((0, 2)),
            "value_loss": (weight * diff.square()).mean(-1),
            "action_mse": (self.act(batch.observations) - batch.actions).square().mean((1, 2)),
        }

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        if isinstance(self.actor, GaussianActor):
            return self.actor(obs, deterministic=deterministic, noise=self.noise)
        return self.actor(obs)

    def state_dict(self) -> dict[str, Any]:
        return parts_state(self, self.PARTS)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_parts(self, self.PARTS, state)
        keep_lr_tensor(self.actor_opt, self.actor_lr)  # the cosine schedule's
