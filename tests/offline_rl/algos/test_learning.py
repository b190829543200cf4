"""Learning tests: every registered algorithm, trained briefly on data from the SAC behaviour
policy, must beat the uniform-random policy's normalised score by a clear margin.

The data: 20,000 Hopper-v5 steps of tests/fixtures/hopper_sac_behavior.pt, collected, written as
Minari and preprocessed as the pipeline does. Budget: 1,500 updates of 64x64 networks per
algorithm, in fp32 and again under bf16 autocast (`train.precision: bf16`), which must learn as
well. Minutes of CPU in all, so marked slow: `pytest -m slow tests/offline_rl/algos`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch

from datagen.behavior.policies import RandomPolicy, SACPolicy
from datagen.collection.minari_writer import DatasetInfo, write_dataset
from datagen.collection.reference import d4rl_reference
from datagen.collection.rollouts import rollout_episodes
from datagen.preprocessing.config import PreprocessConfig
from datagen.preprocessing.preprocess import preprocess
from offline_rl.algos.registry import ALGORITHMS, algorithm_names, make_algorithm
from offline_rl.buffer import ReplayBuffer
from offline_rl.evaluation import AgentPolicy, PolicyFn, evaluate_policy
from offline_rl.speed import Precision, accelerate
from offline_rl.windows import WindowBuffer
from pipelines.params import Globals
from transitions.loader import Transitions, load_transitions
from transitions.metadata import TransitionsMeta

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

ENV_ID = "Hopper-v5"
BEHAVIOUR = Path(__file__).resolve().parents[2] / "fixtures" / "hopper_sac_behavior.pt"
DATA_STEPS = 20_000
UPDATES = 1_500
BATCH_SIZE = 256
LR = Globals().lr  # the top-level `lr`: params.yaml's, the schema's default
EVAL_EPISODES = 10
EVAL_SEED = 1_000_000
MARGIN = 5.0  # normalised points above random; the behaviour data sits about 11 above it

# Small networks and a short budget. CQL's actor rate follows `lr` here: CORL's 3e-5 is meant for
# a million updates. IQL's cosine decay spans this run, as CORL's spans its run.
# The Decision Transformer: two 64-wide layers over windows of 10 steps, warmed up over a tenth of
# the run at the top-level rate (the paper's 1e-4 over 10,000 warm-up steps is for 100,000 updates).
OVERRIDES: dict[str, dict[str, Any]] = {
    "cql": {"actor_lr": None},
    "iql": {"actor_lr_cosine_steps": UPDATES},
    "dt": {"width": 64, "layers": 2, "context": 10, "warmup_steps": 150, "learning_rate": None},
}


def small_config(name: str) -> Any:
    _, config_model = ALGORITHMS[name]
    fields = {"hidden": (64, 64), **OVERRIDES.get(name, {})}
    known = {k: v for k, v in fields.items() if k in config_model.model_fields}
    return config_model.model_validate(known).with_default_lr(LR)


def batches(name: str, data: Transitions, seeds: list[int]) -> ReplayBuffer | WindowBuffer:
    """Rows, or windows for a sequence model."""
    context = getattr(small_config(name), "context", None)
    if context is None:
        return ReplayBuffer.from_transitions(data, seeds=seeds)
    return WindowBuffer(data, context, seeds)


@pytest.fixture(scope="session")
def behaviour_transitions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("learning")
    info = DatasetInfo(
        dataset_id="hopper/medium-v0",
        env_id=ENV_ID,
        algorithm_name="SAC behaviour policy (tests/fixtures)",
        description="learning-test dataset",
        code_permalink="tests",
    )
    torch.manual_seed(0)  # the policy samples from torch's generator, seeded at random per process
    episodes = rollout_episodes(ENV_ID, SACPolicy(BEHAVIOUR), DATA_STEPS, base_seed=0, num_envs=8)
    write_dataset(root, info, episodes, d4rl_reference(ENV_ID))
    out = root / "train.h5"
    preprocess(
        [("hopper/medium-v0", root / "hopper/medium-v0")], out, PreprocessConfig(chunk_rows=5000)
    )
    return out


def normalised_score(policy: PolicyFn, meta: TransitionsMeta) -> float:
    (result,) = evaluate_policy(
        ENV_ID, policy, EVAL_EPISODES, EVAL_SEED, meta.ref_min_score, meta.ref_max_score
    )
    scores = result.normalized_scores()
    assert scores is not None, "the dataset carries no reference scores"
    return float(scores.mean())


@pytest.fixture(scope="session")
def random_score(behaviour_transitions: Path) -> float:
    space = gym.make(ENV_ID).action_space
    assert isinstance(space, gym.spaces.Box)
    meta = load_transitions(behaviour_transitions).meta
    return normalised_score(RandomPolicy(space, seed=0), meta)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", algorithm_names(discrete_actions=False))
def test_beats_random_policy(
    name: str, precision: Precision, behaviour_transitions: Path, random_score: float
) -> None:
    torch.manual_seed(0)
    data = load_transitions(behaviour_transitions)
    device = torch.device("cpu")
    config = small_config(name)
    algo = make_algorithm(name, data.meta.obs_dim, data.meta.act_dim, config, device)
    buffer = batches(name, data, [0])
    update = accelerate(algo, precision=precision)
    for _ in range(UPDATES):
        metrics = update(buffer.sample(BATCH_SIZE))
    assert all(torch.isfinite(v).all() for v in metrics.values()), metrics

    policy = AgentPolicy.of(algo, data.meta, device)
    score = normalised_score(policy, data.meta)
    print(f"\n{name} {precision}: normalised score {score:.1f} (random {random_score:.1f})")
    assert score > random_score + MARGIN, f"{name} {precision}: {score:.1f} vs {random_score:.1f}"


@pytest.mark.parametrize("name", ["td3_bc", "iql"])
def test_every_seed_of_a_multi_seed_run_beats_the_random_policy(
    name: str, behaviour_transitions: Path, random_score: float
) -> None:
    """Three seeds trained together (one process, stacked networks), each evaluated on the same
    episodes in one vector environment, each above random by the margin."""
    data = load_transitions(behaviour_transitions)
    config = small_config(name)
    seeds = [0, 1, 2]
    algo = make_algorithm(name, data.meta.obs_dim, data.meta.act_dim, config, "cpu", seeds)
    buffer = ReplayBuffer.from_transitions(data, seeds=seeds)
    for _ in range(UPDATES):
        algo.update(buffer.sample(BATCH_SIZE))
    policy = AgentPolicy(lambda obs: algo.act(obs), data.meta, torch.device("cpu"), len(seeds))
    results = evaluate_policy(
        ENV_ID,
        policy,
        EVAL_EPISODES,
        EVAL_SEED,
        data.meta.ref_min_score,
        data.meta.ref_max_score,
        seeds=len(seeds),
    )
    scores = [float(r.normalized_scores().mean()) for r in results]  # type: ignore[union-attr]
    print(f"\n{name} seeds {seeds}: normalised scores {[round(s, 1) for s in scores]}")
    assert all(score > random_score + MARGIN for score in scores), (scores, random_score)
