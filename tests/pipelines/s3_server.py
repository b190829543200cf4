"""A real S3-compatible server (moto_server) on loopback, for remote tests and transfer benchmarks.

moto_server speaks the S3 HTTP API, so DVC's s3 remote (s3fs/aiobotocore) talks to it exactly as it
would to AWS or MinIO: only `endpointurl` differs. It binds 127.0.0.1 on a free port and is always
stopped on exit; start-up is bounded in time.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str
    # Throwaway credentials, fresh per server so no copy of them exists in any file: moto accepts
    # any pair, and tests look for these values where they must not be.
    access_key_id: str = field(default_factory=lambda: "AKIA" + secrets.token_hex(8).upper())
    secret_access_key: str = field(default_factory=lambda: secrets.token_urlsafe(30))

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/dvcstore"

    def env(self) -> dict[str, str]:
        """Environment with the credentials, and nothing from ~/.aws that could leak in."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": "/nonexistent/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(endpoint: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with code {process.returncode} at start")
        try:
            with urllib.request.urlopen(endpoint, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise TimeoutError(f"moto_server did not answer on {endpoint} within {START_TIMEOUT_S:.0f} s")


def _create_bucket(server: S3Server) -> None:
    # Plain HTTP PUT on the bucket is S3's CreateBucket; moto does not check the signature.
    request = urllib.request.Request(f"{server.endpoint}/{server.bucket}", method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise RuntimeError(f"creating bucket {server.bucket}: HTTP {response.status}")


@contextmanager
def moto_s3(bucket: str = "dvc-remote", log: Path | None = None) -> Iterator[S3Server]:
    """Run moto_server on 127.0.0.1 with an empty `bucket`; stop it on exit."""
    port = free_port()
    binary = Path(sys.executable).parent / "moto_server"
    sink = log.open("wb") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        stdout=sink,
        stderr=subprocess.STDOUT,
    )
    try:
        server = S3Server(endpoint=f"http://127.0.0.1:{port}", bucket=bucket)
        _wait_until_up(server.endpoint, process)
        _create_bucket(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)
        if log and not isinstance(sink, int):
            sink.close()
