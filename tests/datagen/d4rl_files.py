"""Test helpers: D4RL-format files with known episodes, and a loopback HTTP server for them."""

from __future__ import annotations

import hashlib
import http.server
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

OBS_DIM, ACT_DIM = 11, 3  # Hopper-v5


@dataclass(frozen=True)
class D4RLEpisodes:
    """Episode lengths and how each ends ("terminal", "timeout" or "trailing": no flag)."""

    lengths: tuple[int, ...] = (5, 7, 3, 10, 1, 6, 4)
    endings: tuple[str, ...] = (
        "terminal",
        "timeout",
        "terminal",
        "timeout",
        "timeout",
        "terminal",
        "trailing",
    )

    @property
    def rows(self) -> int:
        return sum(self.lengths)

    @property
    def ends(self) -> np.ndarray:
        return np.cumsum(self.lengths) - 1


def write_d4rl_file(
    path: Path, episodes: D4RLEpisodes, next_observations: bool = True, seed: int = 0
) -> dict[str, np.ndarray]:
    """Write a D4RL-layout HDF5 file and return its arrays."""
    rng = np.random.default_rng(seed)
    n = episodes.rows
    arrays = {
        "observations": rng.normal(size=(n, OBS_DIM)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, ACT_DIM)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": np.zeros(n, dtype=bool),
        "timeouts": np.zeros(n, dtype=bool),
    }
    if next_observations:
        arrays["next_observations"] = rng.normal(size=(n, OBS_DIM)).astype(np.float32)
    for end, ending in zip(episodes.ends, episodes.endings, strict=True):
        if ending != "trailing":
            arrays["terminals" if ending == "terminal" else "timeouts"][end] = True
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f[key] = value
        f["infos/qpos"] = rng.normal(size=(n, 6))
    return arrays


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class ServedFile:
    body: bytes
    drop_first: int = 0  # this many responses close the connection half-way through the body
    requests: list[str | None] = field(default_factory=list)  # Range header of each request


class FileServer(http.server.ThreadingHTTPServer):
    files: dict[str, ServedFile]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FileServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        served = self.server.files.get(self.path)
        if served is None:
            self.send_error(404)
            return
        header = self.headers.get("Range")
        served.requests.append(header)
        match = re.match(r"bytes=(\d+)-$", header or "")
        start = int(match.group(1)) if match else 0
        body = served.body[start:]
        self.send_response(206 if match else 200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if match:
            self.send_header(
                "Content-Range", f"bytes {start}-{len(served.body) - 1}/{len(served.body)}"
            )
        self.end_headers()
        if served.drop_first > 0:
            served.drop_first -= 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@contextmanager
def serve(files: dict[str, ServedFile]) -> Iterator[str]:
    """Serve `files` (url path -> file) on 127.0.0.1; yields the base url."""
    server = FileServer(("127.0.0.1", 0), _Handler)
    server.files = files
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
