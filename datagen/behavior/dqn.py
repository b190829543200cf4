"""Double DQN (van Hasselt et al., "Deep Reinforcement Learning with Double Q-learning", 2016),
the behaviour-policy learner for Discrete action spaces. Like the SAC beside it, it reuses the
shared ensemble networks (one member: the seed dimension of 1), fused Adam and the
device-resident replay buffer, whose actions are one float column holding the action's index.

The online network picks the next action and the target network values it; the TD error is
taken through the Huber loss (Mnih et al., 2015); the target network is a copy of the online one,
refreshed every `target_update_interval` gradient steps. Epsilon-greedy exploration (the run's
numpy generator, linear schedule) lives with the run (datagen/behavior/run.py), not here.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from datagen.behavior.config import DQNConfig
from offline_rl.algos.base import load_parts, parts_state
from offline_rl.networks import Observations, grad_norm, make_adam, observation_mlp, values_at
from offline_rl.seeds import INIT, stream_seed
from transitions.loader import Batch


class DQN:
    PARTS: ClassVar[tuple[str, ...]] = ("q", "q_target", "optimizer")

    def __init__(
        self,
        obs_dim: Observations,  # a width, or the layout (an image gets the CNN encoder)
        act_dim: int,  # the number of actions (one Q-value each)
        config: DQNConfig,
        device: torch.device,
        seed: int = 0,
    ) -> None:
        self.config, self.seeds = config, 1
        self.num_actions = act_dim
        # The initial weights from the seed's own stream, as the offline algorithms take theirs.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(seed, INIT))
            self.q = observation_mlp(obs_dim, act_dim, config.hidden, members=1).to(device)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.optimizer = make_adam(self.q, config.lr)
        self.step = 0  # gradient steps taken: when to refresh the target network

    @torch.no_grad()
    def td_target(self, batch: Batch) -> Tensor:
        """r + gamma (1 - d) Q'(s', a'), a' greedy in the online network (Double DQN): (1, B)."""
        next_action = self.q(batch.next_observations).argmax(-1)
        next_q = values_at(self.q_target(batch.next_observations), next_action)
        return batch.rewards + self.config.discount * (1.0 - batch.dones) * next_q

    def update(self, batch: Batch, diagnostics: bool = True) -> dict[str, Tensor]:
        """One Double DQN step on a batch of (1, B, ...) rows; actions are float indices. The
        gradient norm and Q statistics only with `diagnostics` (the loop logs them, and only on
        its logging steps)."""
        target = self.td_target(batch)
        q_all = self.q(batch.observations)
        q = values_at(q_all, batch.actions)
        loss = F.smooth_l1_loss(q, target, reduction="none").mean(-1)
        self.optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        diagnostic_metrics = (
            {
                "grad_norm/q": grad_norm(self.q, 1),
                "q_mean": q.detach().mean(-1),
                "q_max": q_all.detach().max(-1).values.mean(-1),
            }
            if diagnostics
            else {}
        )
        self.optimizer.step()
        self.step += 1
        if self.step % self.config.target_update_interval == 0:
            self.q_target.load_state_dict(self.q.state_dict())
        return {"q_loss": loss.detach()} | diagnostic_metrics

    @torch.no_grad()
    def validation_losses(self, batch: Batch) -> dict[str, Tensor]:
        """The Double DQN TD error on held-out rows, without learning."""
        q = values_at(self.q(batch.observations), batch.actions)
        return {"td_error": (q - self.td_target(batch)).square().mean(-1)}

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        """Greedy action indices (1, n) for observations (1, n, obs_dim); always greedy
        (`deterministic` is the algorithms' interface): exploration is the run's."""
        return self.q(obs).argmax(-1)

    def state_dict(self) -> dict[str, Any]:
        return parts_state(self, self.PARTS)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_parts(self, self.PARTS, state)
