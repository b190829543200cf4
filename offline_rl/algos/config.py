"""The algorithms' config models (params.yaml `algos.<name>`), in one torch-free module: the params
schema (pipelines/params.py) is built from them without loading torch or the algorithms, and the
data stages that validate params do not depend on the algorithms' code. Each algorithm's file
imports its model from here; its docstring gives the defaults' sources and its deviations."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from core.config import StrictModel


class AlgoConfig(StrictModel):
    """Base of algorithm configs. Learning-rate fields listed in LR_FIELDS may be None, which means
    'use the top-level `lr` from params.yaml' (so `dvc exp run -S lr=...` reaches them)."""

    LR_FIELDS: ClassVar[tuple[str, ...]] = ()
    # Which actions the algorithm takes: Box (a vector in [-1, 1]) or Discrete (an index).
    DISCRETE_ACTIONS: ClassVar[bool] = False
    # Sequence models train on windows of consecutive steps (offline_rl/windows.py), not on rows.
    SEQUENCE: ClassVar[bool] = False

    def with_default_lr(self, lr: float) -> AlgoConfig:
        unset = {name: lr for name in self.LR_FIELDS if getattr(self, name) is None}
        return self.model_copy(update=unset)

    def lr(self, name: str) -> float:
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"{type(self).__name__}.{name} unresolved: call with_default_lr first")
        return float(value)


class BCConfig(AlgoConfig):
    LR_FIELDS: ClassVar[tuple[str, ...]] = ("actor_lr",)
    actor_lr: float | None = Field(default=None, gt=0, le=1)
    hidden: tuple[int, ...] = (256, 256)


class TD3BCConfig(AlgoConfig):
    LR_FIELDS: ClassVar[tuple[str, ...]] = ("actor_lr", "critic_lr")
    actor_lr: float | None = Field(default=None, gt=0, le=1)
    critic_lr: float | None = Field(default=None, gt=0, le=1)
    alpha: float = Field(default=2.5, ge=0)
    discount: float = Field(default=0.99, gt=0, le=1)
    tau: float = Field(default=0.005, gt=0, le=1)
    policy_noise: float = Field(default=0.2, ge=0)
    noise_clip: float = Field(default=0.5, ge=0)
    policy_freq: int = Field(default=2, ge=1)
    hidden: tuple[int, ...] = (256, 256)


class IQLConfig(AlgoConfig):
    LR_FIELDS: ClassVar[tuple[str, ...]] = ("actor_lr", "critic_lr", "value_lr")
    actor_lr: float | None = Field(default=None, gt=0, le=1)
    critic_lr: float | None = Field(default=None, gt=0, le=1)
    value_lr: float | None = Field(default=None, gt=0, le=1)
    expectile: float = Field(default=0.7, gt=0, lt=1)
    beta: float = Field(default=3.0, gt=0)
    discount: float = Field(default=0.99, gt=0, le=1)
    tau: float = Field(default=0.005, gt=0, le=1)
    # 0 keeps the actor's learning rate constant.
    actor_lr_cosine_steps: int = Field(default=1_000_000, ge=0)
    deterministic_actor: bool = False
    hidden: tuple[int, ...] = (256, 256)


class CQLConfig(AlgoConfig):
    LR_FIELDS: ClassVar[tuple[str, ...]] = ("actor_lr", "critic_lr")
    actor_lr: float | None = Field(default=3e-5, gt=0, le=1)
    critic_lr: float | None = Field(default=None, gt=0, le=1)
    discount: float = Field(default=0.99, gt=0, le=1)
    tau: float = Field(default=0.005, gt=0, le=1)
    cql_alpha: float = Field(default=10.0, ge=0)
    n_actions: int = Field(default=10, ge=1)
    temperature: float = Field(default=1.0, gt=0)
    lagrange: bool = False
    target_action_gap: float = 5.0
    bc_steps: int = Field(default=0, ge=0)
    hidden: tuple[int, ...] = (256, 256, 256)


class AWACConfig(AlgoConfig):
    LR_FIELDS: ClassVar[tuple[str, ...]] = ("actor_lr", "critic_lr")
    actor_lr: float | None = Field(default=None, gt=0, le=1)
    critic_lr: float | None = Field(default=None, gt=0, le=1)
    awac_lambda: float = Field(default=1.0, gt=0)
    discount: float = Field(default=0.99, gt=0, le=1)
    tau: float = Field(default=0.005, gt=0, le=1)
    hidden: tuple[int, ...] = (256, 256, 256)


class ReBRACConfig(AlgoConfig):
    LR_FIELDS: ClassVar[tuple[str, ...]] = ("actor_lr", "critic_lr")
    actor_lr: float | None = Field(default=None, gt=0, le=1)
    critic_lr: float | None = Field(default=None, gt=0, le=1)
    actor_bc_coef: float = Field(default=1.0, ge=0)
    critic_bc_coef: float = Field(default=0.01, ge=0)
    discount: float = Field(default=0.99, gt=0, le=1)
    tau: float = Field(default=0.005, gt=0, le=1)
    policy_noise: float = Field(default=0.2, ge=0)
    noise_clip: float = Field(default=0.5, ge=0)
    policy_freq: int = Field(default=2, ge=1)
    normalize_q: bool = True
    actor_layer_norm: bool = False
    critic_layer_norm: bool = True
    hidden: tuple[int, ...] = (256, 256, 256)


class DiscreteBCConfig(AlgoConfig):
    DISCRETE_ACTIONS: ClassVar[bool] = True
    LR_FIELDS: ClassVar[tuple[str, ...]] = ("actor_lr",)
    actor_lr: float | None = Field(default=None, gt=0, le=1)
    beta: float = Field(default=0.5, ge=0)  # weight of the logits' L2 penalty
    hidden: tuple[int, ...] = (256, 256)


class DiscreteCQLConfig(AlgoConfig):
    DISCRETE_ACTIONS: ClassVar[bool] = True
    LR_FIELDS: ClassVar[tuple[str, ...]] = ("critic_lr",)
    critic_lr: float | None = Field(default=6.25e-5, gt=0, le=1)
    discount: float = Field(default=0.99, gt=0, le=1)
    cql_alpha: float = Field(default=1.0, ge=0)
    target_update_interval: int = Field(default=8000, ge=1)
    n_critics: int = Field(default=1, ge=1)
    hidden: tuple[int, ...] = (256, 256)


class DiscreteIQLConfig(AlgoConfig):
    DISCRETE_ACTIONS: ClassVar[bool] = True
    LR_FIELDS: ClassVar[tuple[str, ...]] = ("actor_lr", "critic_lr", "value_lr")
    actor_lr: float | None = Field(default=None, gt=0, le=1)
    critic_lr: float | None = Field(default=None, gt=0, le=1)
    value_lr: float | None = Field(default=None, gt=0, le=1)
    expectile: float = Field(default=0.7, gt=0, lt=1)
    beta: float = Field(default=3.0, gt=0)
    discount: float = Field(default=0.99, gt=0, le=1)
    tau: float = Field(default=0.005, gt=0, le=1)
    hidden: tuple[int, ...] = (256, 256)


class DTConfig(AlgoConfig):
    LR_FIELDS: ClassVar[tuple[str, ...]] = ("learning_rate",)
    # A sequence model: it trains on windows of `context` steps and acts from its history.
    SEQUENCE: ClassVar[bool] = True
    learning_rate: float | None = Field(default=1e-4, gt=0, le=1)
    context: int = Field(default=20, ge=1)
    layers: int = Field(default=3, ge=1)
    heads: int = Field(default=1, ge=1)
    width: int = Field(default=128, ge=1)  # the embedding's
    embedding_dropout: float = Field(default=0.1, ge=0, lt=1)
    attention_dropout: float = Field(default=0.1, ge=0, lt=1)
    residual_dropout: float = Field(default=0.1, ge=0, lt=1)
    weight_decay: float = Field(default=1e-4, ge=0)
    warmup_steps: int = Field(default=10_000, ge=0)
    clip_grad: float = Field(default=0.25, gt=0)
    max_timestep: int = Field(default=1000, ge=1)  # timestep embeddings; later steps share the last
    return_scale: float = Field(default=0.001, gt=0)  # returns-to-go as the model sees them
    # The return the policy is asked for at evaluation, in the environment's units; null: the
    # Decision Transformer paper's for Hopper, HalfCheetah and Walker2d (offline_rl/algos/dt.py).
    target_return: float | None = None


# `train.algo` names one of these (the registry of classes, offline_rl/algos/registry.py, has the
# same names).
ALGO_CONFIGS: dict[str, type[AlgoConfig]] = {
    "bc": BCConfig,
    "td3_bc": TD3BCConfig,
    "iql": IQLConfig,
    "cql": CQLConfig,
    "awac": AWACConfig,
    "rebrac": ReBRACConfig,
    "discrete_bc": DiscreteBCConfig,
    "discrete_cql": DiscreteCQLConfig,
    "discrete_iql": DiscreteIQLConfig,
    "dt": DTConfig,
}
