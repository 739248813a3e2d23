"""Downloading a file into the cache: resume with HTTP Range, verify, then rename into place.

A partial download lives in ``<cache>/.partial/`` while it runs, locked (``flock``) by the process
writing it. A partial file left by a process that was killed is resumed by the next download of
the same file (the others are removed), and so is one left by a download stopped in this process
(Ctrl-C's KeyboardInterrupt, or any other exception a signal handler raises that is not an
:class:`Exception`); a failed or corrupted download removes its own, so the cache only ever holds
complete, verified files.

Every wait is bounded: an overall deadline for the file and a minimum rate over a sliding window
(which is also the socket timeout), see :class:`Limits`; a body is never read past the size the
manifest gives (or :data:`MAX_UNKNOWN_SIZE` when it gives none).
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
from typing import IO, NamedTuple
from urllib.parse import urlsplit

from bredos_npu.environment import env_number
from bredos_npu.errors import DownloadError, Reason
from bredos_npu.models.integrity import CHUNK, Integrity, Progress, file_digest

RETRIES = 5
MIRROR_HINT = "check your network, or set BREDOS_NPU_MODEL_BASE_URL to a mirror"
MAX_UNKNOWN_SIZE = 256 * 1024 * 1024  # bytes: the cap for a file whose size the manifest omits
DEADLINE_ENV = "BREDOS_NPU_DOWNLOAD_DEADLINE"
MIN_RATE_ENV = "BREDOS_NPU_DOWNLOAD_MIN_RATE"
WINDOW_ENV = "BREDOS_NPU_DOWNLOAD_RATE_WINDOW"


class Limits(NamedTuple):
    """How long a download may take.

    deadline_s: seconds for the whole file, retries included. min_rate: bytes per second that
    must arrive over every ``window_s`` seconds (also the socket timeout): a server trickling
    bytes or stalling is given up on after about one window.
    """

    deadline_s: float = 1800.0
    min_rate: float = 4096.0
    window_s: float = 30.0

    @classmethod
    def from_env(cls) -> Limits:
        """The defaults, changed by $BREDOS_NPU_DOWNLOAD_DEADLINE (s), $..._MIN_RATE (bytes/s) and
        $..._RATE_WINDOW (s)."""
        defaults = cls()
        return cls(env_number(DEADLINE_ENV, defaults.deadline_s),
                   env_number(MIN_RATE_ENV, defaults.min_rate, positive=False, limit=1e12),
                   env_number(WINDOW_ENV, defaults.window_s))


def check_url(url: str) -> None:
    """Raise DownloadError (BAD_MIRROR) unless ``url`` is an http(s) URL with a host and a port
    that can be parsed."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as error:
        raise DownloadError(f"{url!r} is not a usable URL ({error})", "set BREDOS_NPU_MODEL_BASE_URL "
                            "to the mirror's base URL, e.g. http://host/models/", Reason.BAD_MIRROR,
                            url=url) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DownloadError(f"{url!r} is not an http(s) URL with a host", "set "
                            "BREDOS_NPU_MODEL_BASE_URL to the mirror's base URL, e.g. "
                            "http://host/models/", Reason.BAD_MIRROR, url=url)


def download(url: str, target: Path, integrity: Integrity, progress: Progress | None = None,
             retries: int = RETRIES, limits: Limits | None = None, size: int | None = None) -> Path:
    """Fetch ``url`` to ``target`` atomically; resume after dropped connections; verify it.

    size: the file's size in bytes when known (a longer body is refused, not read). limits:
    deadline and minimum rate (default: :meth:`Limits.from_env`).
    """
    check_url(url)
    limits = limits or Limits.from_env()
    cap = size if size is not None else MAX_UNKNOWN_SIZE
    partial, lock = _claim_partial(target, cap)
    try:
        resumed = partial.stat().st_size > 0
        _fetch(url, partial, progress, retries, limits, cap)
        actual = file_digest(partial, integrity)
        if actual != integrity.digest and resumed:
            # The partial file left by another run may hold other bytes: try once from zero.
            os.truncate(partial, 0)
            _fetch(url, partial, progress, retries, limits, cap)
            actual = file_digest(partial, integrity)
        if actual != integrity.digest:
            raise DownloadError(
                f"The download of {target.name} failed its integrity check ({integrity.kind} "
                f"{actual}, expected {integrity.digest}); nothing was cached", "try again, or "
                "check the mirror in BREDOS_NPU_MODEL_BASE_URL", Reason.INTEGRITY, url=url,
                path=target)
        os.replace(partial, target)
        return target
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"Cannot write {target}: {error.strerror or error}",
                            reason=Reason.CACHE_UNUSABLE, path=target) from None
    except Exception:
        partial.unlink(missing_ok=True)
        raise
    finally:  # after a stop the partial file stays, unlocked, for the next download to resume
        lock.close()


def _claim_partial(target: Path, cap: int) -> tuple[Path, IO[bytes]]:
    """A locked partial file for ``target``: one left by a killed process (to resume), else new.

    Partial files locked by a running download are left alone; other leftovers are removed.
    """
    import fcntl

    folder = target.parent / ".partial"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        claimed: list[tuple[int, Path, IO[bytes]]] = []
        for leftover in folder.glob(f"{target.name}.*.part"):
            handle = leftover.open("rb")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another process is downloading into it
                handle.close()
                continue
            claimed.append((leftover.stat().st_size, leftover, handle))
        claimed.sort(key=lambda item: item[0])
        for _, extra, handle in claimed[:-1]:  # the largest is resumed, the others removed
            extra.unlink(missing_ok=True)
            handle.close()
        if claimed and claimed[-1][0] <= cap:
            return claimed[-1][1], claimed[-1][2]
        for _, extra, handle in claimed[-1:]:
            extra.unlink(missing_ok=True)
            handle.close()
        # One partial file per download, so two processes fetching the same model do not clash.
        # It gets its .part name only once locked: a download starting meanwhile would otherwise
        # take the fresh file for a leftover, lock it first and make this one fail.
        descriptor, name = tempfile.mkstemp(prefix=target.name + ".", suffix=".new", dir=folder)
        handle = os.fdopen(descriptor, "rb")
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        partial = Path(name).with_suffix(".part")
        os.replace(name, partial)
        return partial, handle
    except OSError as error:
        raise DownloadError(f"Cannot write to the model cache {target.parent}: "
                            f"{error.strerror or error}.", reason=Reason.CACHE_UNUSABLE,
                            path=target.parent) from None


def _fetch(url: str, partial: Path, progress: Progress | None, retries: int, limits: Limits,
           cap: int) -> None:
    deadline = time.monotonic() + limits.deadline_s
    attempts = 0
    while True:
        have = partial.stat().st_size
        request = urllib.request.Request(url, headers={"User-Agent": "bredos-npu"})
        if have:
            request.add_header("Range", f"bytes={have}-")
        timeout = max(0.1, min(limits.window_s, deadline - time.monotonic()))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                _receive(response, partial, have, progress, limits, deadline, cap, url)
            return
        except urllib.error.HTTPError as error:
            if error.code == 416 and have:  # the server cannot resume: start over
                os.truncate(partial, 0)
                continue
            raise _http_error(url, error) from None
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as error:
            received = partial.stat().st_size > have
            attempts += 1
            if not received or attempts > retries:
                raise DownloadError(_network_message(url, error), reason=Reason.NETWORK, url=url) from None
            _check_deadline(url, deadline, limits)
            time.sleep(min(2.0, 0.2 * attempts))  # then resume from where the data stopped
        except ValueError as error:  # urllib's own URL checks (an IPv6 bracket left open...)
            raise DownloadError(f"{url!r} is not a usable URL ({error})", "set "
                                "BREDOS_NPU_MODEL_BASE_URL to the mirror's base URL",
                                Reason.BAD_MIRROR, url=url) from None


def _http_error(url: str, error: urllib.error.HTTPError) -> DownloadError:
    if 300 <= error.code < 400:  # urllib gave up following redirects
        return DownloadError(f"Downloading {url} failed: the server redirects in a loop (or more "
                             f"than {urllib.request.HTTPRedirectHandler.max_redirections} times)",
                             "check the mirror in BREDOS_NPU_MODEL_BASE_URL", Reason.HTTP_ERROR,
                             url=url, status=error.code)
    reason = str(error.reason).splitlines()[0] if str(error.reason).strip() else ""
    return DownloadError(f"Downloading {url} failed: HTTP {error.code} {reason}".rstrip(),
                         "check the model name, or the mirror in BREDOS_NPU_MODEL_BASE_URL",
                         Reason.HTTP_ERROR, url=url, status=error.code)


def _check_deadline(url: str, deadline: float, limits: Limits) -> None:
    if time.monotonic() > deadline:
        raise DownloadError(f"Downloading {url} did not finish within {limits.deadline_s:g} s",
                            f"{MIRROR_HINT} (or raise {DEADLINE_ENV})", Reason.TOO_SLOW, url=url)


def _receive(response: http.client.HTTPResponse, partial: Path, have: int,
             progress: Progress | None, limits: Limits, deadline: float, cap: int, url: str) -> None:
    resumed = response.status == 206
    length = response.headers.get("Content-Length")
    start = have if resumed else 0
    total = start + int(length) if length and length.isdigit() else None
    if total is not None and total > cap:
        raise _too_large(url, total, cap)
    window_start, window_bytes = time.monotonic(), 0
    with partial.open("ab" if resumed else "wb") as out:
        written = start
        if progress and resumed:
            progress(0, total)
        # read1: whatever has arrived (one recv), so a trickle cannot block us inside read().
        while block := response.read1(min(CHUNK, cap + 1 - written)):
            written += len(block)
            if written > cap:
                raise _too_large(url, written, cap)
            out.write(block)
            if progress:
                progress(len(block), total)
            window_bytes += len(block)
            now = time.monotonic()
            _check_deadline(url, deadline, limits)
            if now - window_start >= limits.window_s:
                rate = window_bytes / (now - window_start)
                if rate < limits.min_rate:
                    raise DownloadError(
                        f"Downloading {url} is too slow ({rate:.0f} bytes/s over {now - window_start:.0f}"
                        f" s, less than {limits.min_rate:.0f})", f"{MIRROR_HINT} (or lower "
                        f"{MIN_RATE_ENV})", Reason.TOO_SLOW, url=url, rate=rate)
                window_start, window_bytes = now, 0
    size = partial.stat().st_size
    if total is not None and size < total:
        raise http.client.IncompleteRead(b"", total - size)


def _too_large(url: str, size: int, cap: int) -> DownloadError:
    return DownloadError(f"Downloading {url} failed: the server sends {size} bytes or more for a "
                         f"file of {cap} bytes; nothing was cached", "check the mirror in "
                         "BREDOS_NPU_MODEL_BASE_URL", Reason.TOO_LARGE, url=url, size=size, cap=cap)


def _network_message(url: str, error: Exception) -> str:
    reason = getattr(error, "reason", error)
    host = urlsplit(url).netloc
    if isinstance(reason, ConnectionRefusedError):
        return f"Cannot connect to {host} (connection refused): {MIRROR_HINT}."
    if isinstance(reason, socket.gaierror):
        return f"Cannot resolve {host}: {MIRROR_HINT}."
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return f"{host} did not answer in time: {MIRROR_HINT}."
    said = str(reason).splitlines()[0] if str(reason).strip() else type(reason).__name__
    return f"Downloading {url} failed ({said}): {MIRROR_HINT}."
