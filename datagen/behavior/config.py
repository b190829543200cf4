"""The behaviour stage's config models (params.yaml `behavior`), torch-free: pipelines/params.py
builds the params schema from them without loading the learner."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from core.config import StrictModel
from core.devices import Device


class SACConfig(StrictModel):
    lr: float = Field(default=3e-4, gt=0, le=1)
    discount: float = Field(default=0.99, gt=0, le=1)
    tau: float = Field(default=0.005, gt=0, le=1)
    init_temperature: float = Field(default=1.0, gt=0)
    hidden: tuple[int, ...] = (256, 256)


class DQNConfig(StrictModel):
    """Double DQN for Discrete action spaces (datagen/behavior/dqn.py)."""

    lr: float = Field(default=1e-4, gt=0, le=1)
    discount: float = Field(default=0.99, gt=0, le=1)
    hidden: tuple[int, ...] = (128, 128)
    target_update_interval: int = Field(default=500, ge=1)  # gradient steps between copies
    # Exploration after the random warm-up: epsilon falls linearly from initial_epsilon to
    # final_epsilon over epsilon_decay_steps env steps. Collection samples a DQN checkpoint
    # epsilon-greedily with final_epsilon (the policy as it acted at the end of training).
    initial_epsilon: float = Field(default=1.0, ge=0, le=1)
    final_epsilon: float = Field(default=0.05, ge=0, le=1)
    epsilon_decay_steps: int = Field(default=5_000, ge=1)


class WaypointConfig(StrictModel):
    """The scripted maze controller (datagen/behavior/waypoint.py), `learner: waypoint`:
    force = p_gain * (waypoint - position) - d_gain * velocity, clipped to the action bounds,
    plus Gaussian noise whose scale falls linearly from noise_start to noise_end over the run."""

    p_gain: float = Field(default=10.0, gt=0)
    d_gain: float = Field(default=1.0, ge=0)
    noise_start: float = Field(default=8.0, ge=0)
    noise_end: float = Field(default=0.1, ge=0)


class BehaviorConfig(StrictModel):
    # auto: SAC for Box actions, DQN for Discrete; waypoint: the scripted maze controller (no
    # learning; PointMaze), with its noise as the schedule a learner's progress would be
    learner: Literal["auto", "waypoint"] = "auto"
    steps: int = Field(default=30_000, ge=1)
    random_steps: int = Field(default=5_000, ge=0)
    batch_size: int = Field(default=256, ge=1)
    checkpoint_steps: tuple[int, ...] = (10_000, 20_000, 30_000)
    # Stop at the first checkpoint whose evaluated return reaches this (null: run all `steps`).
    target_return: float | None = None
    eval_episodes: int = Field(default=5, ge=1)
    log_interval: int = Field(default=1_000, ge=1)
    # env steps between resume states (saved at the next episode end; see train_behavior)
    resume_every: int = Field(default=5_000, ge=1)
    device: Device = "cpu"
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast matmuls (offline_rl/speed.py)
    cuda_graph: bool = True  # on CUDA: replay each update from a CUDA graph (no effect on CPU)
    # On CPU, treat values below 1.2e-38 (denormals) as zero while training: Adam's second
    # moments of near-zero gradients sink there and each costs a slow path (offline_rl/speed.py).
    flush_denormals: bool = False
    # SAC on CPU (no effect on DQN or a GPU): the critic's half of each update on a second thread
    # beside the actor's, torch's intra-op threads set to one while training
    # (offline_rl/side_thread.py). The bits equal a one-thread run's (more threads round otherwise).
    critic_thread: bool = False
    sac: SACConfig = SACConfig()  # Box actions
    dqn: DQNConfig = DQNConfig()  # Discrete actions
    waypoint: WaypointConfig = WaypointConfig()  # learner: waypoint

    @model_validator(mode="after")
    def _checkpoints_within_budget(self) -> BehaviorConfig:
        late = [s for s in self.checkpoint_steps if not 0 < s <= self.steps]
        if late:
            raise ValueError(f"checkpoint_steps {late} must lie in 1..steps ({self.steps})")
        return self
