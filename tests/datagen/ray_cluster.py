"""A two-node Ray cluster on loopback for tests: a head and a worker that joins it, each its own
`ray start --block` process (one CPU, a small object store, no dashboard), as on two machines.

Each node runs in its own process session, so stopping it signals exactly the processes this
helper started (never `ray stop`, which stops every Ray process of the user on the machine); Ray
ties a node's daemons and workers to that blocking process. Nothing leaves loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

RAY = str(Path(sys.executable).parent / "ray")
NODE = [
    "--block",
    "--node-ip-address=127.0.0.1",
    "--num-cpus=1",
    "--object-store-memory=100000000",  # 100 MB each: Ray's default is 30% of the machine's RAM
    "--disable-usage-stats",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Ray head exited ({process.returncode}):\n{log.read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"the Ray head did not listen on port {port} in {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the node's process group (its CLI and what it started), SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        with suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with suppress(subprocess.TimeoutExpired):
            process.wait(wait)
            return


def processes_under(root: Path) -> list[int]:
    """PIDs whose command line names `root` (this cluster's temp dir, unique to it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                if str(root).encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
    return pids


@contextmanager
def local_ray_cluster() -> Iterator[str]:
    """Start a head and one joined worker node; yield the head's address (host:port)."""
    # Ray's Unix sockets live under the temp dir and their paths must stay under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    port = free_port()
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        head_log = root / "head.log"
        with head_log.open("wb") as out:
            head = subprocess.Popen(
                [RAY, "start", "--head", f"--port={port}", "--include-dashboard=false",
                 f"--temp-dir={root}", *NODE],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        nodes.append(head)
        wait_for_port(port, head, head_log, timeout=180)
        with (root / "worker.log").open("wb") as out:
            worker = subprocess.Popen(
                [RAY, "start", f"--address=127.0.0.1:{port}", *NODE],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        nodes.append(worker)
        yield f"127.0.0.1:{port}"
    finally:
        for node in reversed(nodes):
            stop(node)
        for pid in processes_under(root):  # a daemon that outlived its node: ours, by its path
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["rm", "-rf", str(root)], check=False)
