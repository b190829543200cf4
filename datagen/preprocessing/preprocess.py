"""Minari datasets -> one flat transitions file (transitions/schema.py has the layout).

Spaces: each dataset's come from its metadata (`dataset_metadata.py`, through `transitions.spaces`)
and all must be the same; Discrete actions are stored as indices, a Dict observation as its declared
keys (`preprocess.observation_keys`) concatenated in order. Nothing is written before they pass.

Streaming: episodes are read one at a time straight from each dataset's HDF5 file into blocks of at
most min(`chunk_rows`, 65536) rows (`blocks.py`; by `workers` forked processes, `workers.py`, when
there are several), which are appended in episode order to a fixed write buffer of `chunk_rows` rows
that is flushed whenever it fills. Peak memory is therefore set by `chunk_rows` and `workers` (plus
one episode's rewards and flags, a few bytes per step), never by the dataset. Statistics
(observation mean/std by Chan's parallel merge, per-episode returns) are accumulated in the same
pass and stored as attributes; the output is the same whatever `workers` is, and its arrays the
same whatever `chunk_rows` is (statistics agree to float rounding).

Arrays derived here:
- `returns_to_go`: for step t of an episode of T steps, sum_{k=t}^{T-1} discount^(k-t) r_k of the
  raw rewards (`return_to_go_discount`; 1.0, undiscounted, is what Decision Transformer uses). It
  stops at the episode's last step whether the episode terminated or was truncated: nothing is
  bootstrapped past a timeout. `load_transitions` applies the reward transform to it exactly.
- `validation`: True on every step of the episodes held out for validation. The split is by
  episode, round(validation_fraction * episodes) of them, drawn by `numpy.random.default_rng(seed)`
  over all episodes of all sources, so it is deterministic under the seed. Observation and return
  statistics (hence normalisation and return-range reward scaling) come from training episodes only.

Where this differs from D4RL's `qlearning_dataset`:
- D4RL pairs row i with row i+1 of the flat arrays and drops the final step of every timed-out
  episode (it has no next observation there). Minari stores T+1 observations per episode, so we take
  next_observations from the episode's own sequence: no transition crosses episodes and the final
  step of a truncated episode is kept, marked `timeouts=True, terminals=False`.
- D4RL's `terminals` can be set together with `timeouts`; here a step is a timeout only when it was
  truncated and not terminal, so the two flags never overlap.
- D4RL returns everything in memory in float32 and leaves transforms to each algorithm; we write raw
  values to disk and record the transforms (normalisation, reward scale/shift) as attributes that the
  loader applies on the training device.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datagen.preprocessing.blocks import Piece, build_inline, jobs_for
from datagen.preprocessing.config import PreprocessConfig
from datagen.preprocessing.dataset_metadata import Spaces, describe_spaces, read_metadata
from datagen.preprocessing.minari_reader import PreprocessError, count_episodes_and_steps
from datagen.preprocessing.workers import ParallelRows, can_fork
from transitions.writer import MAX_CHUNK_ROWS, Header, RowCountError, open_writer


def validation_episodes(total: int, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask over episodes: round(fraction * total) held out, drawn from the seed."""
    held_out = np.zeros(total, dtype=bool)
    count = round(fraction * total)
    if fraction > 0 and not 0 < count < total:
        raise PreprocessError(
            f"preprocess.validation_fraction = {fraction} holds out {count} of {total} episodes; "
            "choose a fraction that leaves at least one episode on each side"
        )
    held_out[np.random.default_rng(seed).choice(total, count, replace=False)] = True
    return held_out


@dataclass(frozen=True)
class Sources:
    """The Minari datasets a transitions file is made of, checked to agree with each other."""

    names: list[str]
    env_id: str
    reference: tuple[float | None, float | None, str | None]  # min, max, source
    spaces: Spaces
    files: list[tuple[Path, int]]  # (main_data.hdf5, its episodes)
    steps: int  # the steps their episodes hold in all, counted from the arrays' shapes


def read_sources(
    sources: list[tuple[str, Path]],
    env_id: str | None,
    observation_keys: Sequence[str] | None = None,
) -> Sources:
    """Check the datasets' metadata (of `env_id` where given, one environment, the same spaces
    and reference scores) and count their episodes."""
    names = [s[0] for s in sources]
    read = [read_metadata(name, folder, env_id, observation_keys) for name, folder in sources]
    metadatas = [metadata for metadata, _ in read]
    first, first_spaces = names[0], read[0][1]
    for name, (_, spaces) in zip(names, read, strict=True):
        if spaces != first_spaces:
            raise PreprocessError(
                f"datasets {first!r} and {name!r} have different spaces "
                f"({', '.join(describe_spaces(first_spaces))} vs {', '.join(describe_spaces(spaces))}, or Box "
                "bounds); one transitions file holds one layout"
            )
    env_ids = {json.loads(m["env_spec"])["id"] for m in metadatas if "env_spec" in m}
    if len(env_ids) != 1:
        raise PreprocessError(f"datasets {names} mix environments {env_ids}")
    refs = {
        (m.get("ref_min_score"), m.get("ref_max_score"), m.get("ref_score_source"))
        for m in metadatas
    }
    if len(refs) != 1:
        raise PreprocessError(f"datasets {names} disagree on reference scores")
    main_files = [folder / "data" / "main_data.hdf5" for _, folder in sources]
    counts = [count_episodes_and_steps(main_file) for main_file in main_files]
    return Sources(
        names=names,
        env_id=env_ids.pop(),
        reference=refs.pop(),
        spaces=read[0][1],
        files=[
            (main_file, episodes)
            for main_file, (episodes, _) in zip(main_files, counts, strict=True)
        ],
        steps=sum(steps for _, steps in counts),
    )


@contextlib.contextmanager
def _declared_rows(source: Sources, rows: int | None) -> Iterator[None]:
    """A contiguous file is created for the steps counted beforehand: name the sources if their
    episodes then yield another number (a file changed while it was read)."""
    try:
        yield
    except RowCountError as error:
        raise PreprocessError(
            f"datasets {source.names}: their episodes were counted at {rows} steps but gave "
            f"another number when read ({error}); did a file change meanwhile?"
        ) from None


def preprocess(
    sources: list[tuple[str, Path]],
    output: Path,
    config: PreprocessConfig,
    seed: int = 0,
    env_id: str | None = None,
) -> dict[str, float]:
    """Convert Minari datasets (id, dataset folder) into `output`; returns summary statistics.
    With `env_id`, every dataset must have been recorded in that environment."""
    source = read_sources(sources, env_id, config.observation_keys)
    observations, actions = source.spaces.observations, source.spaces.actions
    if observations.image and config.normalize_observations:
        raise PreprocessError(
            f"preprocess.normalize_observations is true, but {source.names} hold uint8 images "
            f"{observations.image}, which networks scale by 1/255 on the device (not by a "
            "mean and std): set it false"
        )
    held_out = validation_episodes(
        sum(count for _, count in source.files), config.validation_fraction, seed
    )
    train_returns: list[float] = []
    compression = None if config.compression == "none" else config.compression
    # Uncompressed arrays are written contiguous, which disk training memory-maps
    # (transitions/writer.py); that needs the row count beforehand: the steps counted in the files.
    rows = source.steps if compression is None else None
    episode_id = 0
    jobs = jobs_for(source.files)
    common = (held_out, config.return_to_go_discount, observations, actions)
    # Rows per block a worker hands over (and per slice of a long episode it reads): small enough
    # that the workers' shared blocks stay a few MB, whatever `chunk_rows` is.
    block_rows = min(config.chunk_rows, MAX_CHUNK_ROWS)
    workers: contextlib.AbstractContextManager[ParallelRows | None] = contextlib.nullcontext()
    if config.workers > 1 and len(jobs) > 1 and can_fork():
        workers = ParallelRows(jobs, *common, config.workers, block_rows)
    # Workers are forked before the output file is opened.
    with (
        _declared_rows(source, rows),
        workers as parallel,
        open_writer(output, observations, actions, config.chunk_rows, compression, rows) as writer,
    ):

        def append(piece: Piece) -> None:
            nonlocal episode_id
            if piece.columns:
                writer.add(piece.columns)
            for episode_return in piece.returns:
                if not held_out[episode_id]:
                    train_returns.append(episode_return)
                episode_id += 1

        def give(block: dict[str, np.ndarray], rows: int, returns: list[float], _: bool) -> None:
            append(Piece({key: array[:rows] for key, array in block.items()}, returns))

        if parallel is None:
            build_inline(jobs, *common, block_rows, give)
        else:
            for piece in parallel:
                append(piece)
        writer.flush()
        if writer.rows == 0:
            raise PreprocessError(f"datasets {source.names} hold no transitions")
        returns = np.asarray(train_returns)
        reward_scale = config.reward_scale
        if config.reward_normalization == "return_range":
            span = returns.max() - returns.min()
            reward_scale *= 1000.0 / span if span > 0 else 1.0
        ref_min, ref_max, ref_source = source.reference
        writer.write_header(
            Header(
                env_id=source.env_id,
                dataset_ids=source.names,
                ref_min_score=ref_min,
                ref_max_score=ref_max,
                ref_score_source=ref_source,
                actions=actions,
                observations=observations,
                normalize_observations=config.normalize_observations,
                reward_scale=reward_scale,
                reward_shift=config.reward_shift,
                return_to_go_discount=config.return_to_go_discount,
                validation_fraction=config.validation_fraction,
                split_seed=seed,
                num_episodes=episode_id,
                num_validation_episodes=int(held_out.sum()),
                returns=returns,
            )
        )
        rows = writer.rows
    return {
        "transitions": float(rows),
        "episodes": float(episode_id),
        "validation_episodes": float(held_out.sum()),
        "return_mean": float(returns.mean()),
        "reward_scale": reward_scale,
    }
