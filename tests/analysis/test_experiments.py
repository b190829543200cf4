"""Gathering rows for the report: `dvc exp show --json` output and a fake wandb API."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from analysis.experiments import dataset_label, gather_dvc, gather_wandb, parse_curve

CURVE = "step,eval/normalized_score_mean,eval/return_mean\n100,1.5,50\n200,2.5,80\n"


def namespace(env_id: str) -> str:
    return env_id.split("-v")[0].lower()


def data(algo: str, seed: int, final: float | None, best: float | None = None) -> dict[str, Any]:
    evaluate: dict[str, Any] = {}
    if final is not None:
        evaluate = {
            "algo": algo,
            "dataset": "hopper/medium-v0",
            "evaluate/normalized_score_mean": final,
        }
    train = {"algo": algo} | ({} if best is None else {"eval/best_normalized_score": best})
    return {
        "params": {"params.yaml": {"data": {"env": "Hopper-v5", "seed": seed, "lr": 1e-3}}},
        "metrics": {
            "metrics/evaluate.json": {"data": evaluate},
            "metrics/train.json": {"data": train},
        },
    }


def sha(n: int) -> str:
    return f"{n:02x}" * 20


def exp(name: str, n: int, payload: dict[str, Any], state: str | None = None) -> dict[str, Any]:
    executor = None if state is None else {"state": state, "name": "dvc-task"}
    rev = {"rev": sha(n), "name": name, "data": payload, "error": None, "experiments": None}
    return {"revs": [rev], "executor": executor, "name": name}


def table() -> list[dict[str, Any]]:
    workspace = {"rev": "workspace", "name": None, "data": data("iql", 0, 99.0), "error": None}
    head = {  # HEAD holds the same result as commit 1: one row, the older commit's
        "rev": sha(2),
        "name": "main",
        "data": data("td3_bc", 0, 30.0, 35.0),
        "error": None,
        "experiments": [
            exp("bc-0", 10, data("bc", 0, 40.0, 45.0)),
            exp("bc-1", 11, data("bc", 1, 44.0)),
            exp("queued", 12, data("bc", 2, 1.0), state="queued"),
            exp("failed", 13, data("bc", 3, 1.0), state="failed"),
            exp("no-score", 14, data("bc", 4, None)),
            exp("done", 15, data("cql", 0, 5.0), state="success"),
        ],
    }
    old = {"rev": sha(1), "name": None, "data": data("td3_bc", 0, 30.0, 35.0), "error": None}
    return [workspace, head, old]


TIMES = {sha(1): 1000, sha(2): 2000, sha(10): 3000, sha(11): 3000, sha(15): 2500}


def read(rev: str, path: str) -> str | None:
    assert path == "plots/train/eval.csv"
    return CURVE if rev != sha(11) else None


def times(revs: Iterable[str]) -> dict[str, int]:
    return {rev: TIMES[rev] for rev in revs}


def test_dvc_rows_are_committed_results_newest_first() -> None:
    runs = gather_dvc(table(), read, times, namespace)
    assert (
        [(r.name, r.algo, r.seed, r.time) for r in runs]
        == [
            ("bc-0", "bc", 0, 3000),  # same time: by name
            ("bc-1", "bc", 1, 3000),
            ("done", "cql", 0, 2500),
            (sha(1)[:7], "td3_bc", 0, 1000),  # HEAD repeats commit 1's result: collapsed into it
        ]
    )  # no workspace (iql), no queued or failed experiment, no experiment without a score
    bc0, bc1 = runs[0], runs[1]
    assert (bc0.final_score, bc0.best_score, bc0.dataset) == (40.0, 45.0, "hopper/medium-v0")
    assert bc0.curve == ((100, 1.5), (200, 2.5)) and bc0.rev == sha(10) and bc0.source == "dvc"
    assert bc1.best_score is None and bc1.curve == ()


def test_an_experiment_holding_a_commits_result_represents_it() -> None:
    # `dvc exp apply bc-0` then commit: the commit's row is the experiment's.
    rows = table()
    rows[2]["data"] = data("bc", 0, 40.0, 45.0)
    rows[1]["data"] = data("bc", 0, 40.0, 45.0)
    runs = gather_dvc(rows, read, times, namespace)
    assert [r.name for r in runs] == ["bc-0", "bc-1", "done"]


def test_include_filters_by_name() -> None:
    runs = gather_dvc(table(), read, times, namespace, include="^bc-")
    assert [r.name for r in runs] == ["bc-0", "bc-1"]


def test_dataset_label_prefers_recorded_ids() -> None:
    params = {"env": "Hopper-v5", "preprocess": {"datasets": ["medium", "d4rl/hopper/expert-v2"]}}
    assert dataset_label("hopper/a-v0,hopper/b-v0", params, namespace) == "hopper/a-v0+hopper/b-v0"
    assert dataset_label(["x/y-v0"], params, namespace) == "x/y-v0"
    assert dataset_label(None, params, namespace) == "hopper/medium-v0+d4rl/hopper/expert-v2"


def test_curve_skips_rows_without_a_score() -> None:
    text = "step,eval/normalized_score_mean\n100,1.0\n150,\n200,3.0\n"
    assert parse_curve(text) == ((100, 1.0), (200, 3.0))
    assert parse_curve(None) == ()


@dataclass
class FakeRun:
    """The attributes of `wandb.apis.public.Run` the report reads."""

    id: str
    name: str | None
    group: str
    job_type: str
    created_at: str
    config: dict[str, Any]
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    state: str = "finished"
    scanned: list[list[str]] = field(default_factory=list)

    def scan_history(self, keys: list[str]) -> Iterable[Mapping[str, Any]]:
        self.scanned.append(keys)
        return [row for row in self.history if all(k in row for k in keys)]


class FakeApi:
    def __init__(self, runs: list[FakeRun]) -> None:
        self.all = runs
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def runs(self, path: str, filters: dict[str, Any]) -> list[FakeRun]:
        self.calls.append((path, filters))
        return [
            r for r in self.all if r.job_type == filters["jobType"] and r.state == filters["state"]
        ]


def config(algo: str, seed: int) -> dict[str, Any]:
    return {
        "env": "Hopper-v5",
        "seed": seed,
        "lr": 3e-4,
        "preprocess": {"datasets": ["medium"]},
        "train": {"algo": algo, "steps": 200},
        "algos": {},
        "dataset_ids": ["hopper/medium-v0"],
        "git_commit": "abc",
    }


def fake_api() -> FakeApi:
    score = "eval/normalized_score_mean"
    history = [
        {"_step": 100, score: 10.0},
        {"_step": 150, "critic_loss": 1.0},
        {"_step": 200, score: 20.0},
    ]
    return FakeApi(
        [
            FakeRun(
                "t1", "sweep-a-train", "sweep-a", "train", "2026-01-01T10:00:00Z",
                config("iql", 0), {score: 20.0, "eval/best_normalized_score": 21.0, "algo": "iql"},
                history,
            ),
            FakeRun(  # its evaluate run: same group and params, created after
                "e1", "sweep-a-evaluate", "sweep-a", "evaluate", "2026-01-01T10:05:00Z",
                config("iql", 0), {"evaluate/normalized_score_mean": 25.0},
            ),
            FakeRun(  # another seed, no evaluate run: the last evaluation in training is final
                "t2", None, "workspace", "train", "2026-01-02T10:00:00Z",
                config("iql", 1), {score: 30.0}, history[:1],
            ),
            FakeRun(  # an evaluate run of other params in the same group is not its pair
                "e2", "x", "workspace", "evaluate", "2026-01-02T11:00:00Z",
                config("iql", 5), {"evaluate/normalized_score_mean": 99.0},
            ),
            FakeRun(  # crashed: left out
                "t3", "c", "workspace", "train", "2026-01-03T10:00:00Z",
                config("iql", 2), {score: 1.0}, state="crashed",
            ),
            FakeRun(  # finished but never evaluated: left out
                "t4", "d", "workspace", "train", "2026-01-03T10:00:00Z",
                config("iql", 3), {},
            ),
        ]
    )  # fmt: skip


def test_wandb_rows_from_runs_summary_and_full_history() -> None:
    api = fake_api()
    runs = gather_wandb(api, "me/offline-rl", namespace)
    assert [call[0] for call in api.calls] == ["me/offline-rl", "me/offline-rl"]
    assert [(r.name, r.rev, r.seed) for r in runs] == [("t2", "t2", 1), ("sweep-a-train", "t1", 0)]
    t2, t1 = runs
    assert (t1.algo, t1.dataset, t1.source) == ("iql", "hopper/medium-v0", "wandb")
    assert (t1.final_score, t1.best_score) == (25.0, 21.0)  # final from the evaluate run
    assert t1.curve == ((100, 10.0), (200, 20.0))
    assert t1.time == 1767261600  # 2026-01-01T10:00:00Z
    assert (t2.final_score, t2.best_score, t2.curve) == (30.0, None, ((100, 10.0),))
    run_t1 = next(r for r in api.all if r.id == "t1")
    assert run_t1.scanned == [["_step", "eval/normalized_score_mean"]]


def test_wandb_include_filters_by_run_name() -> None:
    assert [r.name for r in gather_wandb(fake_api(), "p", namespace, include="^sweep-")] == [
        "sweep-a-train"
    ]


def test_an_evaluate_run_older_than_the_train_run_is_not_its_pair() -> None:
    api = fake_api()
    next(r for r in api.all if r.id == "e1").created_at = "2026-01-01T09:00:00Z"
    t1 = next(r for r in gather_wandb(api, "p", namespace) if r.rev == "t1")
    assert t1.final_score == 20.0


SEEDED_CURVE = "step,seed,eval/normalized_score_mean\n100,0,1.0\n100,1,3.0\n200,0,2.0\n200,1,4.0\n"


def seeded(scores: dict[int, float], best: dict[int, float], data_seed: int = 0) -> dict[str, Any]:
    """An experiment of several training seeds: each seed's numbers under `seeds`."""
    evaluate = {
        "algo": "td3_bc",
        "dataset": "hopper/medium-v0",
        "evaluate/normalized_score_mean": sum(scores.values()) / len(scores),
        "seeds": {str(k): {"evaluate/normalized_score_mean": v} for k, v in scores.items()},
    }
    train = {
        "algo": "td3_bc",
        "seeds": {str(k): {"eval/best_normalized_score": v} for k, v in best.items()},
    }
    params = {"env": "Hopper-v5", "seed": data_seed, "train": {"seeds": sorted(scores)}}
    return {
        "params": {"params.yaml": {"data": params}},
        "metrics": {
            "metrics/evaluate.json": {"data": evaluate},
            "metrics/train.json": {"data": train},
        },
    }


def test_a_multi_seed_experiment_gives_a_row_per_training_seed() -> None:
    head: dict[str, Any] = {
        "rev": sha(2),
        "name": "main",
        "data": {},
        "error": None,
        "experiments": [exp("grid", 20, seeded({0: 10.0, 1: 30.0}, {0: 12.0, 1: 33.0}, 7))],
    }
    runs = gather_dvc(
        [head], lambda rev, path: SEEDED_CURVE, lambda revs: dict.fromkeys(revs, 5), namespace
    )
    assert [(r.name, r.seed, r.data_seed, r.final_score, r.best_score) for r in runs] == [
        ("grid/seed0", 0, 7, 10.0, 12.0),
        ("grid/seed1", 1, 7, 30.0, 33.0),
    ]
    assert runs[0].curve == ((100, 1.0), (200, 2.0)) and runs[1].curve == ((100, 3.0), (200, 4.0))
