"""Evaluation in the spaces Minari stores beyond Box: Discrete actions (indices shifted by the
space's start), Dict observations (flattened in the file's key order) and the env's success rate
(`info["is_success"]` at each episode's end), through AgentPolicy and evaluate_policy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from offline_rl.agent import load_agents, save_agents
from offline_rl.algos.registry import ALGORITHMS, algorithm_names, make_algorithm
from offline_rl.evaluation import AgentPolicy, batch_of_one, evaluate_policy
from tests.offline_rl.algos.discrete_data import discrete_meta

EPISODE_STEPS = 4
START = 3  # the Discrete actions' first value, as Discrete(2, start=3)


class SignEnv(gym.Env[Any, Any]):
    """Dict observations {"b": [z], "a": [x, y]} (keys out of the file's order on purpose) and
    Discrete(2, start=3) actions: reward 1 for action 3 + (x > 0); four steps an episode, a success
    (`info["is_success"]`) when every step was rewarded. `report_success=False` omits it."""

    def __init__(self, report_success: bool = True) -> None:
        self.observation_space = spaces.Dict(
            {"b": spaces.Box(-1, 1, (1,)), "a": spaces.Box(-1, 1, (2,))}
        )
        self.action_space = spaces.Discrete(2, start=START)
        self.report_success = report_success

    def _observe(self) -> dict[str, np.ndarray]:
        self.x = float(self.np_random.uniform(-1, 1))
        return {"b": np.array([0.5], np.float32), "a": np.array([self.x, -self.x], np.float32)}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self.steps, self.rewarded = 0, 0
        return self._observe(), {}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        assert isinstance(action, np.integer | int), type(action)  # an env action, not a float
        reward = float(int(action) == START + int(self.x > 0))
        self.steps += 1
        self.rewarded += int(reward)
        done = self.steps == EPISODE_STEPS
        info = (
            {"is_success": self.rewarded == EPISODE_STEPS} if done and self.report_success else {}
        )
        return self._observe(), reward, done, False, info


@pytest.fixture(scope="module", autouse=True)
def sign_envs() -> Iterator[None]:
    gym.register("SignTest-v0", entry_point=f"{__name__}:SignEnv")
    gym.register(
        "SignTestNoSuccess-v0", entry_point=f"{__name__}:SignEnv", kwargs={"report_success": False}
    )
    yield
    for env_id in ("SignTest-v0", "SignTestNoSuccess-v0"):
        del gym.registry[env_id]


def sign_meta(env_id: str = "SignTest-v0") -> Any:
    """The file of SignEnv data: keys a then b, observations normalised."""
    return discrete_meta(
        3,
        2,
        rows=10,
        env_id=env_id,
        action_start=START,
        obs_mean=(0.0, 0.0, 0.5),
        obs_std=(2.0, 1.0, 1.0),
        observation_keys=(("a", 2), ("b", 1)),
    )


def sign_policy(obs: torch.Tensor) -> torch.Tensor:
    """The right index for SignEnv: 1 where the first feature (x, after flattening) is positive."""
    return (obs[..., 0] > 0).long()


def test_agent_policy_flattens_dict_observations_and_returns_env_actions() -> None:
    seen: list[torch.Tensor] = []

    def act(obs: torch.Tensor) -> torch.Tensor:
        seen.append(obs)
        return sign_policy(obs)

    policy = AgentPolicy(act, sign_meta(), torch.device("cpu"))
    batch = {"b": np.array([[0.5], [0.5]]), "a": np.array([[0.4, -0.4], [-0.2, 0.2]])}
    actions = policy(batch)
    assert actions.dtype == np.int64 and actions.tolist() == [START + 1, START]
    # keys in the file's order (a, then b), normalised by the file's statistics
    expected = torch.tensor([[[0.2, -0.4, 0.0], [-0.1, 0.2, 0.0]]])
    torch.testing.assert_close(seen[0], expected)
    one = policy(batch_of_one({"b": np.array([0.5]), "a": np.array([0.4, -0.4])}))
    assert one.tolist() == [START + 1]


def test_evaluation_runs_dict_observations_and_reports_success_rate() -> None:
    policy = AgentPolicy(sign_policy, sign_meta(), torch.device("cpu"), seeds=2)
    results = evaluate_policy(
        "SignTest-v0", policy, 5, seed=0, ref_min_score=None, ref_max_score=None, seeds=2
    )
    for result in results:
        assert result.returns == (float(EPISODE_STEPS),) * 5
        metrics = result.to_metrics("evaluate")
        assert metrics["evaluate/success_rate"] == 1.0
        assert "evaluate/normalized_score_mean" not in metrics  # no reference scores


def test_success_rate_averages_the_episodes_and_is_absent_where_the_env_has_none() -> None:
    def half_wrong(obs: torch.Tensor) -> torch.Tensor:
        right = sign_policy(obs)
        flip = torch.tensor([0, 1, 0, 1])  # env k of 4 acts wrongly when k is odd
        return (right + flip.view(1, -1)) % 2

    policy = AgentPolicy(half_wrong, sign_meta(), torch.device("cpu"))
    (result,) = evaluate_policy("SignTest-v0", policy, 4, 0, None, None)
    assert result.successes == (1.0, 0.0, 1.0, 0.0)
    assert result.to_metrics()["eval/success_rate"] == 0.5

    policy = AgentPolicy(sign_policy, sign_meta("SignTestNoSuccess-v0"), torch.device("cpu"))
    (result,) = evaluate_policy("SignTestNoSuccess-v0", policy, 3, 0, None, None)
    assert result.successes is None
    assert not any("success" in key for key in result.to_metrics())


@pytest.mark.parametrize("name", algorithm_names(discrete_actions=True))
def test_a_saved_discrete_agent_acts_in_the_env_after_loading(name: str, tmp_path: Path) -> None:
    meta = sign_meta()
    _, config_model = ALGORITHMS[name]
    config = config_model.model_validate({"hidden": (8,)}).with_default_lr(1e-3)
    algo = make_algorithm(name, meta.obs_dim, meta.act_dim, config, "cpu", [0, 1])
    save_agents(tmp_path, name, algo, meta, [0, 1])
    agent = load_agents(sorted(tmp_path.glob("seed_*.pt")), torch.device("cpu"))
    assert agent.meta == meta
    (result, _) = evaluate_policy("SignTest-v0", agent.policy(), 2, 0, None, None, seeds=2)
    assert len(result.returns) == 2 and result.successes is not None
