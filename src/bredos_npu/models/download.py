"""Downloading a file into the cache: resume with HTTP Range, verify, then rename into place.

A partial download lives in ``<cache>/.partial/`` while it runs; a failed or corrupted download
removes it, so the cache only ever holds complete, verified files.
"""

from __future__ import annotations

import http.client
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from bredos_npu.errors import DownloadError, Reason
from bredos_npu.models.integrity import CHUNK, Integrity, Progress, file_digest

RETRIES = 5
TIMEOUT = 30.0
MIRROR_HINT = "check your network, or set BREDOS_NPU_MODEL_BASE_URL to a mirror"


def download(url: str, target: Path, integrity: Integrity, progress: Progress | None = None,
             retries: int = RETRIES, timeout: float = TIMEOUT) -> Path:
    """Fetch ``url`` to ``target`` atomically; resume after dropped connections; verify it."""
    try:
        (target.parent / ".partial").mkdir(parents=True, exist_ok=True)
        # One partial file per download, so two processes fetching the same model do not clash.
        handle, name = tempfile.mkstemp(prefix=target.name + ".", suffix=".part",
                                        dir=target.parent / ".partial")
        os.close(handle)
    except OSError as error:
        raise DownloadError(f"Cannot write to the model cache {target.parent}: "
                            f"{error.strerror or error}.", reason=Reason.CACHE_UNUSABLE,
                            path=target.parent) from None
    partial = Path(name)
    try:
        _fetch(url, partial, progress, retries, timeout)
        actual = file_digest(partial, integrity)
        if actual != integrity.digest:
            raise DownloadError(
                f"The download of {target.name} failed its integrity check ({integrity.kind} "
                f"{actual}, expected {integrity.digest}); nothing was cached: try again, or "
                "check the mirror in BREDOS_NPU_MODEL_BASE_URL.", reason=Reason.INTEGRITY, url=url,
                path=target)
        os.replace(partial, target)
        return target
    except OSError as error:
        raise DownloadError(f"Cannot write {target}: {error.strerror or error}.",
                            reason=Reason.CACHE_UNUSABLE, path=target) from None
    finally:
        partial.unlink(missing_ok=True)


def _fetch(url: str, partial: Path, progress: Progress | None, retries: int, timeout: float) -> None:
    attempts = 0
    while True:
        have = partial.stat().st_size if partial.exists() else 0
        request = urllib.request.Request(url, headers={"User-Agent": "bredos-npu"})
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                _receive(response, partial, have, progress)
            return
        except urllib.error.HTTPError as error:
            if error.code == 416 and have:  # the server cannot resume: start over
                partial.unlink()
                continue
            raise DownloadError(f"Downloading {url} failed: HTTP {error.code} {error.reason}: check "
                                "the model name, or the mirror in BREDOS_NPU_MODEL_BASE_URL.",
                                reason=Reason.HTTP_ERROR, url=url, status=error.code) from None
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as error:
            received = partial.exists() and partial.stat().st_size > have
            attempts += 1
            if not received or attempts > retries:
                raise DownloadError(_network_message(url, error), reason=Reason.NETWORK, url=url) from None
            time.sleep(min(2.0, 0.2 * attempts))  # then resume from where the data stopped


def _receive(response: http.client.HTTPResponse, partial: Path, have: int,
             progress: Progress | None) -> None:
    resumed = response.status == 206
    length = response.headers.get("Content-Length")
    total = (have if resumed else 0) + int(length) if length else None
    with partial.open("ab" if resumed else "wb") as out:
        if progress and resumed:
            progress(0, total)
        while block := response.read(CHUNK):
            out.write(block)
            if progress:
                progress(len(block), total)
    size = partial.stat().st_size
    if total is not None and size < total:
        raise http.client.IncompleteRead(b"", total - size)


def _network_message(url: str, error: Exception) -> str:
    reason = getattr(error, "reason", error)
    host = urlparse(url).netloc
    if isinstance(reason, ConnectionRefusedError):
        return f"Cannot connect to {host} (connection refused): {MIRROR_HINT}."
    if isinstance(reason, socket.gaierror):
        return f"Cannot resolve {host}: {MIRROR_HINT}."
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return f"{host} did not answer in time: {MIRROR_HINT}."
    return f"Downloading {url} failed ({reason}): {MIRROR_HINT}."
