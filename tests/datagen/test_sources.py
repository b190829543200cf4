"""Dataset sources: D4RL files (local or over HTTP) and Minari folders (Minari remotes:
test_minari_remote.py)."""

from __future__ import annotations

import json
from pathlib import Path

import minari
import numpy as np
import pytest

from datagen.collection.reference import D4RL_REFERENCE_SCORES
from datagen.sources.config import D4RLSource, DownloadConfig, FolderSource, MinariSource
from datagen.sources.d4rl import import_d4rl
from datagen.sources.errors import SourceError
from datagen.sources.http import RetryPolicy, download
from datagen.sources.importer import import_entry
from datagen.sources.minari_folder import import_folder
from tests.conftest import make_random_dataset
from tests.datagen.d4rl_files import (
    D4RLEpisodes,
    ServedFile,
    closed_port,
    serve,
    sha256,
    write_d4rl_file,
)

ENV_ID = "Hopper-v5"
DATASET_ID = "d4rl/hopper/test-v0"
FAST = RetryPolicy(attempts=3, backoff_s=0.01, timeout_s=5)


def load(root: Path, dataset_id: str, monkeypatch: pytest.MonkeyPatch) -> minari.MinariDataset:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return minari.load_dataset(dataset_id)


def test_d4rl_episodes_split_at_terminals_and_timeouts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = D4RLEpisodes()
    arrays = write_d4rl_file(tmp_path / "file.hdf5", layout, next_observations=True)
    import_d4rl(tmp_path / "file.hdf5", tmp_path / "root", DATASET_ID, ENV_ID)

    dataset = load(tmp_path / "root", DATASET_ID, monkeypatch)
    assert dataset.total_episodes == len(layout.lengths)
    assert dataset.total_steps == layout.rows
    starts = np.concatenate([[0], layout.ends[:-1] + 1])
    episodes = list(dataset.iterate_episodes())
    for episode, start, end, ending in zip(
        episodes, starts, layout.ends, layout.endings, strict=True
    ):
        np.testing.assert_array_equal(
            episode.observations[:-1], arrays["observations"][start : end + 1]
        )
        np.testing.assert_array_equal(episode.observations[-1], arrays["next_observations"][end])
        np.testing.assert_array_equal(episode.actions, arrays["actions"][start : end + 1])
        np.testing.assert_allclose(episode.rewards, arrays["rewards"][start : end + 1])
        assert not episode.terminations[:-1].any() and not episode.truncations[:-1].any()
        assert bool(episode.terminations[-1]) == (ending == "terminal")
        assert bool(episode.truncations[-1]) == (ending != "terminal")
    low, high = D4RL_REFERENCE_SCORES["Hopper"]
    metadata = dataset.storage.metadata
    assert (metadata["ref_min_score"], metadata["ref_max_score"]) == (low, high)
    assert metadata["ref_score_source"] == "d4rl"
    assert metadata["provenance"]["infos_not_imported"] == ["infos/qpos"]


def test_d4rl_without_next_observations_drops_the_unknown_last_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = D4RLEpisodes()
    arrays = write_d4rl_file(tmp_path / "file.hdf5", layout, next_observations=False)
    import_d4rl(tmp_path / "file.hdf5", tmp_path / "root", DATASET_ID, ENV_ID)

    episodes = list(load(tmp_path / "root", DATASET_ID, monkeypatch).iterate_episodes())
    # Terminated episodes keep every step; timed-out and trailing ones lose their last step,
    # and the one-step timed-out episode disappears.
    expected = [
        n if ending == "terminal" else n - 1
        for n, ending in zip(layout.lengths, layout.endings, strict=True)
        if ending == "terminal" or n > 1
    ]
    assert [len(e.rewards) for e in episodes] == expected
    second = episodes[1]  # timeout after 7 rows: 6 steps, observations are rows 5..11
    np.testing.assert_array_equal(second.observations, arrays["observations"][5:12])
    assert second.truncations[-1] and not second.terminations[-1]


def test_d4rl_file_for_the_wrong_env_is_named(tmp_path: Path) -> None:
    write_d4rl_file(tmp_path / "file.hdf5", D4RLEpisodes())
    with pytest.raises(SourceError, match=r"file.hdf5: observations \(11,\).*HalfCheetah-v5"):
        import_d4rl(tmp_path / "file.hdf5", tmp_path / "root", DATASET_ID, "HalfCheetah-v5")
    assert not (tmp_path / "root" / DATASET_ID).exists()


def test_download_resumes_after_the_connection_drops(tmp_path: Path) -> None:
    write_d4rl_file(tmp_path / "file.hdf5", D4RLEpisodes())
    served = ServedFile((tmp_path / "file.hdf5").read_bytes(), drop_first=2)
    with serve({"/file.hdf5": served}) as base:
        target = download(
            f"{base}/file.hdf5",
            tmp_path / "out" / "file.hdf5",
            sha256(tmp_path / "file.hdf5"),
            FAST,
        )
    assert target.read_bytes() == served.body
    half = len(served.body) // 2
    assert served.requests == [
        None,
        f"bytes={half}-",
        f"bytes={half + (len(served.body) - half) // 2}-",
    ]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["file.hdf5"]


def test_download_that_keeps_failing_leaves_nothing(tmp_path: Path) -> None:
    write_d4rl_file(tmp_path / "file.hdf5", D4RLEpisodes())
    served = ServedFile((tmp_path / "file.hdf5").read_bytes(), drop_first=99)
    with serve({"/file.hdf5": served}) as base, pytest.raises(SourceError) as error:
        download(f"{base}/file.hdf5", tmp_path / "out" / "file.hdf5", None, FAST)
    assert "failed after 3 attempts" in str(error.value) and "dvc pull" in str(error.value)
    assert list((tmp_path / "out").iterdir()) == []


def test_wrong_sha256_fails_and_leaves_nothing(tmp_path: Path) -> None:
    write_d4rl_file(tmp_path / "file.hdf5", D4RLEpisodes())
    served = {"/file.hdf5": ServedFile((tmp_path / "file.hdf5").read_bytes())}
    expected = r"sha256 [0-9a-f]{64} differs .* check the sha256"
    with serve(served) as base, pytest.raises(SourceError, match=expected):
        download(f"{base}/file.hdf5", tmp_path / "out" / "file.hdf5", "0" * 64, FAST)
    assert list((tmp_path / "out").iterdir()) == []


def test_missing_file_is_not_retried(tmp_path: Path) -> None:
    with (
        serve({}) as base,
        pytest.raises(SourceError, match=r"/nope.hdf5: HTTP 404.*check the url"),
    ):
        download(f"{base}/nope.hdf5", tmp_path / "file.hdf5", None, RetryPolicy(9, 10.0, 5))


def test_unreachable_host_gives_one_clear_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/file.hdf5"
    with pytest.raises(SourceError) as error:
        download(url, tmp_path / "file.hdf5", None, FAST)
    message = str(error.value)
    assert "\n" not in message and url in message and "refused" in message.lower()
    assert list(tmp_path.iterdir()) == []


def test_d4rl_url_entry_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_d4rl_file(tmp_path / "file.hdf5", D4RLEpisodes())
    with serve({"/f.hdf5": ServedFile((tmp_path / "file.hdf5").read_bytes())}) as base:
        entry = D4RLSource(source="d4rl", id=DATASET_ID, url=f"{base}/f.hdf5")
        dataset_id, summary = import_entry(entry, tmp_path / "root", DownloadConfig(), ENV_ID)
    assert dataset_id == DATASET_ID and summary["episodes"] == len(D4RLEpisodes().lengths)
    assert load(tmp_path / "root", DATASET_ID, monkeypatch).total_steps == D4RLEpisodes().rows
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["d4rl"]  # no leftovers


def test_d4rl_entry_needs_exactly_one_location() -> None:
    with pytest.raises(ValueError, match="exactly one of url and path"):
        D4RLSource(source="d4rl", id=DATASET_ID)
    with pytest.raises(ValueError, match="http:// or https://"):
        D4RLSource(source="d4rl", id=DATASET_ID, url="ftp://example.org/f.hdf5")


def test_minari_folder_is_validated_and_copied(
    random_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = FolderSource(source="folder", path=str(random_dataset), id="local/hopper/random-v0")
    dataset_id, _ = import_entry(entry, tmp_path / "root", DownloadConfig(), ENV_ID)
    dataset = load(tmp_path / "root", dataset_id, monkeypatch)
    assert dataset.total_steps == 600


def test_minari_folder_with_inconsistent_shapes_is_refused(tmp_path: Path) -> None:
    import h5py

    folder = make_random_dataset(tmp_path / "src", steps=100, num_envs=1)
    with h5py.File(folder / "data" / "main_data.hdf5", "a") as f:
        actions = f["episode_0/actions"][()]
        del f["episode_0/actions"]
        f["episode_0/actions"] = actions[:-1]
    with pytest.raises(SourceError, match=r"episode_0/actions is \(\d+, 3\), expected"):
        import_folder(folder, tmp_path / "root", "hopper/random-v0")
    assert not (tmp_path / "root" / "hopper" / "random-v0").exists()


def test_minari_folder_from_an_unsupported_version_is_refused(tmp_path: Path) -> None:
    folder = make_random_dataset(tmp_path / "src", steps=50, num_envs=1)
    meta_file = folder / "data" / "metadata.json"
    meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), "minari_version": "9.9"}))
    with pytest.raises(SourceError, match=r"Minari '9.9', which Minari .* cannot read"):
        import_folder(folder, tmp_path / "root", "hopper/random-v0")


def test_minari_folder_in_arrow_format_is_refused(tmp_path: Path) -> None:
    folder = make_random_dataset(tmp_path / "src", steps=50, num_envs=1)
    meta_file = folder / "data" / "metadata.json"
    meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), "data_format": "arrow"}))
    with pytest.raises(SourceError, match=r"stored as 'arrow'; the pipeline reads HDF5"):
        import_folder(folder, tmp_path / "root", "hopper/random-v0")


def test_local_d4rl_file_with_a_wrong_sha256_is_refused(tmp_path: Path) -> None:
    write_d4rl_file(tmp_path / "file.hdf5", D4RLEpisodes())
    entry = D4RLSource(
        source="d4rl", id=DATASET_ID, path=str(tmp_path / "file.hdf5"), sha256="f" * 64
    )
    with pytest.raises(SourceError, match=r"file.hdf5: sha256 [0-9a-f]{64} differs"):
        import_entry(entry, tmp_path / "root", DownloadConfig(), ENV_ID)
    assert not (tmp_path / "root" / DATASET_ID).exists()


def test_entry_ids_and_digests_are_checked_with_a_hint() -> None:
    with pytest.raises(ValueError, match=r"namespace/name-vN, e.g. mujoco/hopper/medium-v0"):
        MinariSource(source="minari", id="medium-v0")
    with pytest.raises(ValueError, match=r"64 hexadecimal digits"):
        D4RLSource(source="d4rl", id=DATASET_ID, path="f.hdf5", sha256="12")
