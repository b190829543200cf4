"""Read whole small Minari episodes through HDF5's C API, skipping h5py's per-call overhead.

Reading a Minari file is bound by per-object costs: every episode is a group of five small
datasets. Opening and reading the five through h5py's low-level API costs more than twice what the
same HDF5 calls cost made directly (docs/performance.md, "Numbers behind the code"): most of the
time is h5py's Python wrappers (an ObjectID per space, type and property list), not HDF5. Reading raw chunks at their file offsets does not help: locating the chunks costs
more HDF5 calls than `H5Dread` makes itself.

So this calls the very library h5py loaded (resolved through h5py's own extension module, so the
two can never disagree on version or state), under h5py's global lock, with the same memory types
h5py would pass: HDF5 does the layout, filters (gzip, ...) and type conversion exactly as it does
for h5py. Anything unusual (a missing or misshapen dataset, a flag type other than h5py's bool,
an episode longer than the caller's slice, any failed call) makes `read` return None, and the
caller reads that episode through h5py instead, which gives the same arrays or the clear error.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

_HID = ctypes.c_int64  # hid_t since HDF5 1.10
_HSIZE_P = ctypes.POINTER(ctypes.c_uint64)
_ALL = 0  # H5S_ALL
_DEFAULT = 0  # H5P_DEFAULT
_MAX_RANK = 32  # H5S_MAX_RANK


@dataclass
class RawEpisode:
    observations: np.ndarray  # float32 (T + 1, obs_dim)
    actions: np.ndarray  # float32 (T, act_dim), or Discrete actions as stored: int64 (T,)
    rewards: np.ndarray  # float64 (T,)
    terminations: np.ndarray  # bool (T,)
    truncations: np.ndarray  # bool (T,)


def _bind() -> Any:
    """The HDF5 functions used here, from the library h5py itself runs on; None if unavailable."""
    if h5py.version.hdf5_version_tuple < (1, 10):  # hid_t was 32 bits before 1.10
        return None
    try:
        from h5py import defs

        # dlsym on an extension module's handle also searches the libraries it was linked with.
        lib = ctypes.PyDLL(defs.__file__)  # PyDLL: the GIL stays held, as h5py holds it
        signatures: dict[str, tuple[Any, list[Any]]] = {
            "H5Gopen2": (_HID, [_HID, ctypes.c_char_p, _HID]),
            "H5Gclose": (ctypes.c_int, [_HID]),
            "H5Dopen2": (_HID, [_HID, ctypes.c_char_p, _HID]),
            "H5Dclose": (ctypes.c_int, [_HID]),
            "H5Dget_space": (_HID, [_HID]),
            "H5Dget_type": (_HID, [_HID]),
            "H5Sget_simple_extent_dims": (ctypes.c_int, [_HID, _HSIZE_P, _HSIZE_P]),
            "H5Sclose": (ctypes.c_int, [_HID]),
            "H5Tequal": (ctypes.c_int, [_HID, _HID]),
            "H5Tclose": (ctypes.c_int, [_HID]),
            "H5Dread": (ctypes.c_int, [_HID, _HID, _HID, _HID, _HID, ctypes.c_void_p]),
        }
        for name, (restype, argtypes) in signatures.items():
            function = getattr(lib, name)
            function.restype, function.argtypes = restype, argtypes
        return lib
    except (ImportError, OSError, AttributeError):
        return None


_LIB = _bind()


def available() -> bool:
    return _LIB is not None


# Given an episode's step count, the arrays its observations (float32, at least steps + 1 rows) and
# actions (float32 or, for Discrete actions, int64; at least steps rows) are to be read into, or
# None to leave the episode to the caller.
Destination = Callable[[int], tuple[np.ndarray, np.ndarray] | None]


class DirectReader:
    """Episodes of an open Minari file read in one pass each (see the module docstring). Box
    observations only (a Dict's are a group per key: the caller reads those through h5py);
    `discrete_actions`: actions are read as stored int64 (T,), anything else declined."""

    def __init__(self, file: h5py.File, max_steps: int, discrete_actions: bool = False) -> None:
        if _LIB is None:
            raise RuntimeError("HDF5's C API is not reachable through h5py")
        from h5py._objects import phil  # h5py's lock around every HDF5 call

        self.file, self.max_steps, self.lock = file, max_steps, phil
        self.dims = (ctypes.c_uint64 * _MAX_RANK)()
        self.float32 = h5py.h5t.NATIVE_FLOAT.id
        self.float64 = h5py.h5t.NATIVE_DOUBLE.id
        self.int64 = h5py.h5t.NATIVE_INT64.id
        self.discrete_actions = discrete_actions
        self.bool = h5py.h5t.py_create(np.dtype(bool))  # kept alive: its id is used below
        self.scratch: dict[bytes, np.ndarray] = {}

    def read(self, index: int, destination: Destination | None = None) -> RawEpisode | None:
        """Episode `index`, or None where the h5py path must decide (errors, episodes longer than
        `max_steps`, or that `destination` declines).

        Without `destination` every array is new. With it, observations and actions are read into
        the arrays it returns, and rewards and flags into buffers of this reader that the next
        call overwrites: that saves a copy and an allocation per array, per episode.
        """
        lib = _LIB
        with self.lock:
            group = lib.H5Gopen2(self.file.id.id, b"episode_%d" % index, _DEFAULT)
            if group < 0:
                return None
            try:
                reuse = destination is not None
                rewards = self._read(
                    group, b"rewards", 1, None, self.float64, np.float64, None, reuse=reuse
                )
                if rewards is None or rewards.shape[0] > self.max_steps:
                    return None
                steps = rewards.shape[0]
                into = destination(steps) if destination is not None else (None, None)
                if into is None:
                    return None
                observations = self._read(
                    group, b"observations", 2, steps + 1, self.float32, np.float32, into[0]
                )
                if self.discrete_actions:
                    actions = self._read(
                        group, b"actions", 1, steps, self.int64, np.int64, into[1], check_type=True
                    )
                else:
                    actions = self._read(
                        group, b"actions", 2, steps, self.float32, np.float32, into[1]
                    )
                flags = [
                    self._read(
                        group,
                        key,
                        1,
                        steps,
                        self.bool.id,
                        np.bool_,
                        None,
                        check_type=True,
                        reuse=reuse,
                    )
                    for key in (b"terminations", b"truncations")
                ]
            finally:
                lib.H5Gclose(group)
        if observations is None or actions is None or flags[0] is None or flags[1] is None:
            return None
        return RawEpisode(observations, actions, rewards, flags[0], flags[1])

    def _buffer(self, key: bytes, rows: int, dtype: Any) -> np.ndarray:
        """This reader's own buffer for `key`, grown to `rows` rows when needed."""
        buffer = self.scratch.get(key)
        if buffer is None or buffer.shape[0] < rows:
            buffer = self.scratch[key] = np.empty(max(rows, 1024), dtype=dtype)
        return buffer[:rows]

    def _read(
        self,
        group: int,
        key: bytes,
        rank: int,
        rows: int | None,
        mem_type: int,
        dtype: Any,
        into: np.ndarray | None,
        check_type: bool = False,
        reuse: bool = False,
    ) -> np.ndarray | None:
        """The whole dataset converted by HDF5 to `mem_type`, into the first rows of `into` (a
        C-contiguous array of `dtype` that has room and the same row shape) or, with `reuse`,
        into this reader's buffer, else into a new array. None unless it has `rank` dims and
        (if given) `rows` rows, or with `check_type` unless it is stored as `mem_type` itself."""
        lib, dims = _LIB, self.dims
        dataset = lib.H5Dopen2(group, key, _DEFAULT)
        if dataset < 0:
            return None
        try:
            if check_type:
                file_type = lib.H5Dget_type(dataset)
                if file_type < 0:
                    return None
                same = lib.H5Tequal(file_type, mem_type)
                lib.H5Tclose(file_type)
                if same <= 0:
                    return None
            space = lib.H5Dget_space(dataset)
            if space < 0:
                return None
            found = lib.H5Sget_simple_extent_dims(space, dims, None)
            lib.H5Sclose(space)
            if found != rank or (rows is not None and dims[0] != rows):
                return None
            shape = tuple(dims[:rank])
            if into is not None:
                fits = into.shape[1:] == shape[1:] and into.shape[0] >= shape[0]
                if not (fits and into.dtype == dtype and into.flags.c_contiguous):
                    return None
                out = into[: shape[0]]
            elif reuse:
                out = self._buffer(key, shape[0], dtype)
            else:
                out = np.empty(shape, dtype=dtype)
            if out.size == 0:
                return out
            status = lib.H5Dread(dataset, mem_type, _ALL, _ALL, _DEFAULT, out.ctypes.data)
            return out if status >= 0 else None
        finally:
            lib.H5Dclose(dataset)
