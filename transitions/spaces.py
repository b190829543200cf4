"""The spaces a transitions file can hold, read from Minari's JSON form of a gymnasium space
(`minari.serialization.serialize_space`, what every Minari dataset's metadata records), torch-free.

Actions: a `Box` of shape (k,) is stored as float32 (N, k) in the env's bounds; a `Discrete(n)`
as int64 (N,) indices 0..n-1 (the env's action minus the space's `start`), and a policy's output
is then n wide (logits or Q-values), which `ActionLayout.act_dim` says for both.
Observations: a `Box` of shape (d,) is stored as float32 (N, d); a `Dict` of such boxes as the
concatenation of its declared keys (`ObservationLayout.keys`, each with its width, recorded in
the file's header), so training reads one flat vector and evaluation flattens the env's
observation the same way. An image, a uint8 `Box` of shape (H, W, C) (or the one declared key of a
`Dict` that holds one: MiniGrid's `image`, its `mission` left out), stays uint8: a row is its
H * W * C bytes (`ObservationLayout.image` keeps the shape, so a network can fold it back), and
networks scale it by 1/255 on the device (offline_rl/networks.py). Every other space fails here,
before any work, naming the space.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import PipelineError


class SpaceError(PipelineError, ValueError):
    """A space the transitions format cannot hold, or a declared observation key it lacks."""


def space_dict(space: Any) -> dict[str, Any]:
    """Minari's JSON form of `space`: a gymnasium space, the JSON string or the dict itself."""
    if isinstance(space, Mapping) and not hasattr(space, "sample"):  # gymnasium's Dict is a Mapping
        return dict(space)
    if isinstance(space, str):
        return dict(json.loads(space))
    from minari.serialization import serialize_space  # gymnasium spaces only come from envs

    try:
        return dict(serialize_space(space, to_string=False))
    except NotImplementedError:  # a space Minari cannot store (MiniGrid's MissionSpace...)
        subspaces = getattr(space, "spaces", None)
        if isinstance(subspaces, Mapping):  # a Dict holding one: name it, key by key
            return {"type": "Dict", "subspaces": {k: space_dict(v) for k, v in subspaces.items()}}
        return {"type": type(space).__name__}


@dataclass(frozen=True)
class ActionLayout:
    """How a dataset's actions are stored and how wide a policy's output is."""

    act_dim: int  # Box: its size; Discrete: n (one logit or Q-value per action)
    num_actions: int = 0  # Discrete: n; 0 for a Box
    start: int = 0  # Discrete: the env's first action (stored indices are action - start)
    low: tuple[float, ...] = ()  # Box bounds; () for Discrete
    high: tuple[float, ...] = ()

    @property
    def discrete(self) -> bool:
        return self.num_actions > 0

    @property
    def row_shape(self) -> tuple[int, ...]:
        """Per-row shape of the file's `actions` array."""
        return () if self.discrete else (self.act_dim,)

    @property
    def dtype(self) -> type:
        return np.int64 if self.discrete else np.float32


def action_layout(space: Any, where: str = "action space") -> ActionLayout:
    """The layout of an action space; `where` names it in the error (a file, a dataset id)."""
    spec = space_dict(space)
    kind = spec.get("type")
    if kind == "Discrete":
        n = int(spec["n"])
        if n < 2:
            raise SpaceError(f"{where}: Discrete({n}) has no choice to learn")
        return ActionLayout(act_dim=n, num_actions=n, start=int(spec.get("start", 0)))
    if kind == "Box" and len(spec["shape"]) == 1:
        low = tuple(float(x) for x in np.broadcast_to(spec["low"], spec["shape"]))
        high = tuple(float(x) for x in np.broadcast_to(spec["high"], spec["shape"]))
        if not all(np.isfinite(low + high)):
            raise SpaceError(f"{where}: Box actions need finite bounds, got {low}..{high}")
        return ActionLayout(act_dim=int(spec["shape"][0]), low=low, high=high)
    raise SpaceError(f"{where}: {describe(spec)} actions are not supported (Box (k,) or Discrete)")


@dataclass(frozen=True)
class ObservationLayout:
    """How an observation becomes the flat vector a file row and a policy hold: float32, or the
    uint8 bytes of an image (`image` its (H, W, C), obs_dim = H * W * C)."""

    obs_dim: int
    keys: tuple[tuple[str, int], ...] = ()  # Dict: (key, width) in the vector's order; () for Box
    image: tuple[int, int, int] | None = None  # (H, W, C) of a uint8 image; None for vectors

    @property
    def dtype(self) -> type:
        """The rows' dtype in every file and on the device: images stay bytes."""
        return np.uint8 if self.image else np.float32

    def flatten(self, observation: Any) -> np.ndarray:
        """The env's observation (one, or a batch from a vector env) as (..., obs_dim) rows of
        `dtype`: a Dict's declared keys concatenated, an image's pixels in (H, W, C) order."""
        if self.keys:
            if not isinstance(observation, Mapping):
                raise SpaceError(f"expected a dict observation with keys {self.key_names}")
            parts: list[np.ndarray] = [
                np.asarray(observation[key], dtype=self.dtype) for key, _ in self.keys
            ]
        else:
            parts = [np.asarray(observation, dtype=self.dtype)]
        if self.image:
            return parts[0].reshape(*parts[0].shape[: parts[0].ndim - 3], self.obs_dim)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)

    def stored(self, rows: np.ndarray) -> np.ndarray | dict[str, np.ndarray]:
        """Flat rows (N, obs_dim) back in the env's form, as replay.h5 and Minari store them: an
        image (N, H, W, C), a Dict's declared keys as one array each."""
        lead = rows.shape[:-1]
        if self.image:
            pixels = rows.astype(np.uint8).reshape(*lead, *self.image)
            return {self.keys[0][0]: pixels} if self.keys else pixels
        if not self.keys:
            return rows
        bounds = np.cumsum([0] + [width for _, width in self.keys])
        return {
            key: rows[..., a:b]
            for (key, _), a, b in zip(self.keys, bounds[:-1], bounds[1:], strict=True)
        }

    @property
    def key_names(self) -> list[str]:
        return [key for key, _ in self.keys]

    def to_json(self) -> str:
        """A header's `observation_keys`: [[key, width], ...] as before images ("[]" for a vector
        Box, so Hopper's files are unchanged); an image adds its shape:
        {"keys": [[key, width]], "image": [H, W, C]}."""
        keys = [[key, width] for key, width in self.keys]
        return json.dumps({"keys": keys, "image": list(self.image)} if self.image else keys)

    @classmethod
    def from_json(cls, text: str) -> ObservationLayout | None:
        """The layout recorded in a header; None for a vector Box (nothing recorded)."""
        data = json.loads(text)
        image = None
        if isinstance(data, dict):
            image = tuple(int(n) for n in data["image"])
            if len(image) != 3 or min(image) < 1:
                raise ValueError(f"image shape {data['image']} is not (H, W, C)")
            data = data["keys"]
        keys = tuple((str(key), int(width)) for key, width in data)
        if image is not None:
            h, w, c = image
            return cls(h * w * c, keys, (h, w, c))
        return cls(sum(w for _, w in keys), keys) if keys else None


def observation_layout(
    space: Any, where: str = "observation space", keys: Sequence[str] | None = None
) -> ObservationLayout:
    """The layout of an observation space; for a Dict, `keys` chooses and orders the keys
    (None: all of them, in the space's order)."""
    spec = space_dict(space)
    kind = spec.get("type")
    if kind == "Box":
        if keys:
            raise SpaceError(f"{where}: observation keys {list(keys)} given for a Box observation")
        if _is_image(spec):
            return _image_layout(spec)
        return ObservationLayout(obs_dim=_vector_width(spec, where))
    if kind == "Dict":
        subspaces: dict[str, Any] = spec["subspaces"]
        chosen = list(subspaces) if keys is None else list(keys)
        unknown = [key for key in chosen if key not in subspaces]
        if unknown or not chosen:
            raise SpaceError(
                f"{where}: observation keys {unknown or chosen} not among {list(subspaces)}"
            )
        images = [key for key in chosen if _is_image(subspaces[key])]
        if images:
            if len(chosen) > 1:  # one encoder per observation: an image and vectors beside it
                raise SpaceError(  # would need two, and a rule to join them
                    f"{where}: image key {images[0]!r} must be the only observation key, "
                    f"got {chosen} (images beside other keys are not supported; declare "
                    f"observation_keys: [{images[0]}])"
                )
            image = _image_layout(subspaces[images[0]])
            return ObservationLayout(image.obs_dim, ((images[0], image.obs_dim),), image.image)
        widths = tuple((key, _vector_width(subspaces[key], f"{where}[{key!r}]")) for key in chosen)
        return ObservationLayout(obs_dim=sum(w for _, w in widths), keys=widths)
    raise SpaceError(
        f"{where}: {describe(spec)} observations are not supported "
        "(Box (d,), uint8 Box image (H, W, C), or Dict of them)"
    )


def _is_image(spec: dict[str, Any]) -> bool:
    """A uint8 Box of three dimensions (H, W, C), as MiniGrid, Atari and rendered frames give."""
    return spec.get("type") == "Box" and len(spec.get("shape", ())) == 3 and _dtype(spec) == "uint8"


def _image_layout(spec: dict[str, Any]) -> ObservationLayout:
    h, w, c = (int(n) for n in spec["shape"])  # uint8: 0..255, which 1/255 maps onto [0, 1]
    return ObservationLayout(obs_dim=h * w * c, image=(h, w, c))


def _dtype(spec: dict[str, Any]) -> str:
    return str(np.dtype(spec.get("dtype", "float32")))


def _vector_width(spec: dict[str, Any], where: str) -> int:
    if spec.get("type") == "Box" and len(spec["shape"]) == 1:
        return int(spec["shape"][0])
    raise SpaceError(
        f"{where}: {describe(spec)} is not supported here "
        "(a Box of shape (d,), or a uint8 Box image (H, W, C))"
    )


def describe(spec: dict[str, Any]) -> str:
    """A space in one short phrase, for errors: `Box(uint8, (64, 64, 3))`, `Text`, `Dict(a, b)`."""
    kind = str(spec.get("type", "unknown space"))
    if kind == "Box":
        return f"Box({spec.get('dtype')}, {tuple(spec.get('shape', ()))})"
    if kind == "Dict":
        return f"Dict({', '.join(spec.get('subspaces', {}))})"
    if kind == "Discrete":
        return f"Discrete({spec.get('n')})"
    return kind
