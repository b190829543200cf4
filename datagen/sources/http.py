"""Download one file over HTTP(S): streamed, resumed, retried, verified, then moved into place.

Bytes go to a temporary sibling of the target. A dropped connection resumes with an HTTP Range
request (or restarts when the server ignores it) after an exponential back-off; the body length is
checked against Content-Length (or Content-Range's total) and the optional sha256, and only a
verified file is renamed to the target, so a failed download leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from core.atomic import atomic_path
from datagen.sources.errors import SourceError

CHUNK_BYTES = 1 << 20
USER_AGENT = "offline-rl-pipeline/0.1 (+urllib)"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # total tries, the first included
    backoff_s: float = 1.0  # waits backoff_s, 2 * backoff_s, 4 * backoff_s, ...
    timeout_s: float = 60.0  # per connect and per read


class _Retryable(Exception):
    """A failure worth another attempt (network, truncated body, 5xx)."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _expected_total(response: http.client.HTTPResponse, offset: int) -> int | None:
    if response.status == 206:
        match = re.search(r"/(\d+)\s*$", response.headers.get("Content-Range", ""))
        return int(match.group(1)) if match else None
    length = response.headers.get("Content-Length")
    return int(length) if length is not None and length.isdigit() else None


def _attempt(url: str, tmp: Path, policy: RetryPolicy, progress: bool) -> None:
    """One request; appends to `tmp` when the server honours the Range, else starts over."""
    offset = tmp.stat().st_size if tmp.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=policy.timeout_s)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # our partial file is already whole, or stale
            tmp.unlink()
            raise _Retryable(f"HTTP 416 for a resume at byte {offset}") from None
        if error.code >= 500 or error.code == 429:
            raise _Retryable(f"HTTP {error.code} {error.reason}") from None
        raise SourceError(
            f"{url}: HTTP {error.code} {error.reason}; check the url in params.yaml"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise _Retryable(str(reason)) from None
    with response:
        if response.status != 206:
            offset = 0  # the server sent the whole body
        total = _expected_total(response, offset)
        mode = "ab" if offset else "wb"
        with (
            tmp.open(mode) as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                desc=Path(url).name or url,
                disable=not progress,
            ) as bar,
        ):
            while True:
                try:
                    block = response.read(CHUNK_BYTES)
                except (http.client.HTTPException, OSError) as error:
                    raise _Retryable(
                        f"connection lost after {out.tell()} bytes ({error!r})"
                    ) from None
                if not block:
                    break
                out.write(block)  # a local write error (disk full) is not retried
                bar.update(len(block))
    size = tmp.stat().st_size
    if total is not None and size != total:
        raise _Retryable(f"connection closed after {size} of {total} bytes")


def download(
    url: str,
    target: Path,
    sha256: str | None = None,
    policy: RetryPolicy | None = None,
    progress: bool = False,
) -> Path:
    """Fetch `url` into `target`; raises SourceError naming the url and what to check."""
    policy = policy or RetryPolicy()
    last = ""
    with atomic_path(target, suffix=".part") as tmp:
        tmp.unlink()  # absent means "nothing received yet"
        for attempt in range(policy.attempts):
            if attempt:
                time.sleep(policy.backoff_s * 2 ** (attempt - 1))
            try:
                _attempt(url, tmp, policy, progress)
                break
            except _Retryable as error:
                last = str(error)
        else:
            raise SourceError(
                f"download of {url} failed after {policy.attempts} attempts ({last}); check the "
                "url and your network, or fetch the dataset with `dvc pull` if it is tracked"
            )
        if sha256 is not None:
            actual = sha256_of(tmp)
            if actual != sha256.lower():
                raise SourceError(
                    f"{url}: sha256 {actual} differs from the expected {sha256}; the file is "
                    "corrupt or changed upstream: check the sha256 in params.yaml"
                )
    return target
