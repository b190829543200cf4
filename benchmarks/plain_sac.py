"""A plain, eager SAC written the way most single-file implementations are (CleanRL's shape): the
yardstick that the behaviour SAC (`datagen/sac.py`) is measured against, for speed and for
learning. Same maths and hyper-parameters as ours (Haarnoja et al. 2018: 256x256 MLPs, two
critics, batch 256, lr 3e-4, learned temperature, one gradient step per environment step); plain
implementation: two critic modules, one Adam per loss with torch's default implementation, three
backward passes, a replay buffer of host NumPy arrays copied to a tensor per batch.

    python -m benchmarks.plain_sac --steps 20000 --seed 0

prints the evaluated returns and the environment steps per second of the learning phase.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


def two_layer_mlp(in_dim: int, out_dim: int, hidden: int = 256) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, out_dim),
    )  # fmt: skip


class PlainActor(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.mean = nn.Linear(hidden, act_dim)
        self.log_std = nn.Linear(hidden, act_dim)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """A reparameterised squashed action, its log-probability, and the deterministic action."""
        features = self.trunk(obs)
        mean = self.mean(features)
        std = self.log_std(features).clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
        normal = torch.distributions.Normal(mean, std)
        pre_tanh = normal.rsample()
        action = torch.tanh(pre_tanh)
        log_prob = normal.log_prob(pre_tanh) - torch.log(1 - action.pow(2) + 1e-6)
        return action, log_prob.sum(-1), torch.tanh(mean)


class PlainSAC:
    def __init__(self, obs_dim: int, act_dim: int, lr: float = 3e-4) -> None:
        self.actor = PlainActor(obs_dim, act_dim)
        self.q1 = two_layer_mlp(obs_dim + act_dim, 1)
        self.q2 = two_layer_mlp(obs_dim + act_dim, 1)
        self.q1_target, self.q2_target = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        self.log_alpha = torch.zeros(1, requires_grad=True)
        self.target_entropy = -float(act_dim)
        self.q_opt = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=lr)
        self.gamma, self.tau = 0.99, 0.005

    def update(self, obs: Tensor, act: Tensor, rew: Tensor, next_obs: Tensor, done: Tensor) -> None:
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            next_act, next_log_prob, _ = self.actor(next_obs)
            next_in = torch.cat([next_obs, next_act], 1)
            next_q = torch.min(self.q1_target(next_in), self.q2_target(next_in)).view(-1)
            target = rew + self.gamma * (1 - done) * (next_q - alpha * next_log_prob)
        q_in = torch.cat([obs, act], 1)
        q_loss = F.mse_loss(self.q1(q_in).view(-1), target) + F.mse_loss(
            self.q2(q_in).view(-1), target
        )
        self.q_opt.zero_grad()
        q_loss.backward()
        self.q_opt.step()

        action, log_prob, _ = self.actor(obs)
        pi_in = torch.cat([obs, action], 1)
        q_pi = torch.min(self.q1(pi_in), self.q2(pi_in)).view(-1)
        actor_loss = (alpha * log_prob - q_pi).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()

        alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad()
        alpha_loss.backward()
        self.alpha_opt.step()
        with torch.no_grad():
            for net, target_net in ((self.q1, self.q1_target), (self.q2, self.q2_target)):
                for param, target_param in zip(
                    net.parameters(), target_net.parameters(), strict=True
                ):
                    target_param.mul_(1 - self.tau).add_(self.tau * param)


def evaluate(agent: PlainSAC, env_id: str, episodes: int, seed: int) -> float:
    env = gym.make(env_id)
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, total = False, 0.0
        while not done:
            with torch.no_grad():
                _, _, action = agent.actor(torch.as_tensor(obs, dtype=torch.float32)[None])
            obs, reward, terminated, truncated, _ = env.step(action[0].numpy())
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def train_plain_sac(
    env_id: str,
    steps: int,
    seed: int,
    random_steps: int = 5_000,
    eval_every: int = 0,
    eval_episodes: int = 5,
) -> dict[str, Any]:
    """Train for `steps` env steps; returns {step: mean eval return} and the learning phase's
    environment steps per second (acting, env step and update; evaluation time excluded)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env = gym.make(env_id)
    assert isinstance(env.action_space, gym.spaces.Box) and env.observation_space.shape
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    agent = PlainSAC(obs_dim, act_dim)
    buffer = {
        "obs": np.zeros((steps, obs_dim), np.float32),
        "act": np.zeros((steps, act_dim), np.float32),
        "rew": np.zeros(steps, np.float32),
        "next_obs": np.zeros((steps, obs_dim), np.float32),
        "done": np.zeros(steps, np.float32),
    }
    returns: dict[int, float] = {}
    learning_time, episode = 0.0, 0
    obs, _ = env.reset(seed=seed)
    for step in range(steps):
        started = time.perf_counter()
        if step < random_steps:
            action = rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)
        else:
            with torch.no_grad():
                action = agent.actor(torch.as_tensor(obs, dtype=torch.float32)[None])[0][0].numpy()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for key, value in zip(buffer, (obs, action, reward, next_obs, terminated), strict=True):
            buffer[key][step] = value
        obs = next_obs
        if terminated or truncated:
            episode += 1
            obs, _ = env.reset(seed=seed + episode)
        if step >= random_steps:
            idx = rng.integers(0, step + 1, 256)
            agent.update(*(torch.as_tensor(array[idx]) for array in buffer.values()))
            learning_time += time.perf_counter() - started
        if eval_every and (step + 1) % eval_every == 0:
            returns[step + 1] = evaluate(agent, env_id, eval_episodes, 10_000 + seed)
    env.close()
    return {
        "returns": returns,
        "learning_steps_per_s": (steps - random_steps) / max(learning_time, 1e-9),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--random-steps", type=int, default=5_000)
    parser.add_argument("--eval-every", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = train_plain_sac(args.env, args.steps, args.seed, args.random_steps, args.eval_every)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
