"""Ranged HTTP reads that survive a flaky service: retries with exponential backoff and jitter on
429, 5xx, timeouts, resets and truncated bodies (honouring Retry-After), and re-signing on 403
(an expired SAS token). GDAL reads COGs through :class:`RangeFile` via rasterio's ``opener``.
"""

from __future__ import annotations

import io
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import httpx

from msc_france.errors import UserError
from msc_france.redact import redact

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class FetchError(Exception):
    """A remote read that failed for good; the message says why in one line."""


@dataclass
class RetryPolicy:
    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    sleep: Callable[[float], None] | None = None  # None: wait on the transfer's cancel event (Ctrl-C cuts it short)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Full-jitter exponential backoff, never shorter than the server's Retry-After."""
        backoff = random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))
        return max(backoff, retry_after or 0.0)


@dataclass
class Transfer:
    """Counts bytes received (for progress bars and the download benchmark)."""

    bytes: int = 0
    requests: int = 0
    retries: int = 0
    resigned: int = 0
    on_bytes: Callable[[int], None] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event, repr=False)  # set on Ctrl-C
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, n: int) -> None:
        with self._lock:
            self.bytes += n
            self.requests += 1
        if self.on_bytes:
            self.on_bytes(n)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        try:
            return max((parsedate_to_datetime(value).timestamp() - time.time()), 0.0)
        except (TypeError, ValueError):
            return None


def strip_query(href: str) -> str:
    """The href without its query string (where SAS tokens live)."""
    return href.split("?", 1)[0]


class RangeClient:
    """Fetches byte ranges of one asset, signing its href and re-signing on 403."""

    def __init__(self, href: str, client: httpx.Client, sign: Callable[[str], str], policy: RetryPolicy,
                 transfer: Transfer) -> None:
        self.unsigned = strip_query(href)
        self.client, self.sign, self.policy, self.transfer = client, sign, policy, transfer
        self.href: str | None = None  # signed on the first request: GDAL opens files from C (see RangeFile.read)
        self.failures: list[FetchError] = []
        self._size: int | None = None

    def _signed(self) -> str:
        """The href with a fresh signature; a failing signer is a :class:`FetchError` naming the asset
        (raised inside GDAL's read callback, any other exception would only be printed, then lost)."""
        try:
            return self.sign(self.unsigned)
        except Exception as exc:  # noqa: BLE001 - any signer failure becomes this asset's failure
            reason = " ".join(str(exc).split()) or type(exc).__name__
            kind = "" if isinstance(exc, UserError) else f"{type(exc).__name__}: "
            raise FetchError(f"{self.unsigned}: signing failed ({kind}{reason})") from None

    def _pause(self, seconds: float) -> None:
        """Wait before a retry (a Retry-After may ask for minutes); Ctrl-C ends the wait and the fetch."""
        if self.policy.sleep is not None:
            self.policy.sleep(seconds)
        elif self.transfer.cancelled.wait(seconds):
            raise FetchError(f"{redact(self.unsigned)}: interrupted")

    def _request(self, start: int, end: int | None) -> tuple[bytes, int]:
        """Bytes ``start..end`` inclusive (``end=None``: one byte, to learn the size) and the total size."""
        last_problem = "no attempt made"
        resigned = False
        if self.href is None:
            self.href = self._signed()
        for attempt in range(self.policy.attempts):
            if self.transfer.cancelled.is_set():  # Ctrl-C: the fetch stops at its next request
                raise FetchError(f"{redact(self.unsigned)}: interrupted")
            stop = start if end is None else end
            try:
                response = self.client.get(self.href, headers={"Range": f"bytes={start}-{stop}"})
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last_problem = f"{type(exc).__name__}"
                self.transfer.retries += 1
                self._pause(self.policy.delay(attempt, None))
                continue
            if response.status_code == 403 and not resigned:
                # Expired SAS token: sign the bare href again (once per request).
                self.href = self._signed()
                self.transfer.resigned += 1
                resigned = True
                continue
            if response.status_code in RETRY_STATUS:
                last_problem = f"HTTP {response.status_code}"
                self.transfer.retries += 1
                self._pause(self.policy.delay(attempt, _retry_after(response)))
                continue
            if response.status_code == 403:
                raise FetchError(f"HTTP 403 for {redact(self.unsigned)} even after re-signing: check the access token")
            if response.status_code == 404:
                raise FetchError(f"HTTP 404 for {redact(self.unsigned)}: the asset is gone from the server")
            if response.status_code not in (200, 206):
                raise FetchError(f"HTTP {response.status_code} for {redact(self.unsigned)}")
            body = response.content
            total = self._total(response, len(body))
            expected = min(stop, total - 1) - start + 1 if response.status_code == 206 else total
            if len(body) != expected:
                last_problem = f"truncated body ({len(body)} of {expected} bytes)"
                self.transfer.retries += 1
                self._pause(self.policy.delay(attempt, None))
                continue
            self.transfer.add(len(body))
            if response.status_code == 200:  # server ignored Range: keep only what was asked
                body = body[start : stop + 1]
            return body, total
        raise FetchError(f"{redact(self.unsigned)}: gave up after {self.policy.attempts} attempts ({last_problem})")

    @staticmethod
    def _total(response: httpx.Response, received: int) -> int:
        content_range = response.headers.get("Content-Range", "")
        if "/" in content_range and not content_range.endswith("/*"):
            return int(content_range.rsplit("/", 1)[1])
        return received

    @property
    def size(self) -> int:
        if self._size is None:
            _, self._size = self._request(0, None)
        return self._size

    def read(self, start: int, length: int) -> bytes:
        if length <= 0 or start >= self.size:
            return b""
        body, _ = self._request(start, min(start + length, self.size) - 1)
        return body


class RangeFile(io.RawIOBase):
    """A read-only, seekable file over HTTP ranges. Each miss fetches what was asked, at least
    ``readahead`` bytes, in one request; the last few segments are kept for GDAL's small re-reads."""

    def __init__(self, reader: RangeClient, readahead: int = 16 * 1024, cached_segments: int = 8) -> None:
        super().__init__()
        self.reader, self.readahead, self.cached_segments = reader, readahead, cached_segments
        self.position = 0
        self.error: FetchError | None = None
        self._segments: OrderedDict[int, bytes] = OrderedDict()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        end = 0
        if whence == io.SEEK_END:
            try:
                end = self.reader.size
            except FetchError as exc:  # see read(): no exception may reach GDAL
                self.error = exc
                self.reader.failures.append(exc)
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: end}[whence]
        self.position = max(base + offset, 0)
        return self.position

    def read(self, size: int = -1) -> bytes:
        """Never raises: GDAL calls this from C, where a Python exception aborts the process. A failure
        is kept in ``error`` and reads return nothing, which GDAL reports as a read error."""
        if self.error is not None:
            return b""
        try:
            data = self._read(size)
        except FetchError as exc:
            self.error = exc
            self.reader.failures.append(exc)
            return b""
        self.position += len(data)
        return data

    def _read(self, size: int) -> bytes:
        total = self.reader.size
        end = total if size is None or size < 0 else min(self.position + size, total)
        if self.position >= end:
            return b""
        for start, data in self._segments.items():
            if start <= self.position and end <= start + len(data):
                self._segments.move_to_end(start)
                return data[self.position - start : end - start]
        length = max(end - self.position, self.readahead)
        data = self.reader.read(self.position, length)
        self._segments[self.position] = data
        if len(self._segments) > self.cached_segments:
            self._segments.popitem(last=False)
        return data[: end - self.position]

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@dataclass
class HttpOpener:
    """rasterio ``opener``: GDAL reads each http(s) asset through a :class:`RangeFile`."""

    client: httpx.Client
    sign: Callable[[str], str]
    policy: RetryPolicy
    transfer: Transfer

    _failures: dict[str, list[FetchError]] = field(default_factory=dict)

    def __call__(self, path: str, mode: str = "rb") -> RangeFile:
        if not path.startswith(("http://", "https://")) or "r" not in mode:
            raise FileNotFoundError(path)
        reader = RangeClient(path, self.client, self.sign, self.policy, self.transfer)
        self._failures[strip_query(path)] = reader.failures
        return RangeFile(reader)

    def failure(self, href: str) -> FetchError | None:
        """The first fetch failure behind a GDAL error on ``href``, if any."""
        failures = self._failures.get(strip_query(href))
        return failures[0] if failures else None


def http_client(timeout: float = 30.0) -> httpx.Client:
    """One pooled client shared by the fetch threads."""
    return httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=True,
                        limits=httpx.Limits(max_connections=16, max_keepalive_connections=8))


def no_signing(href: str) -> str:
    return href


def planetary_computer_signing(href: str) -> str:
    """Sign a blob href with a fresh SAS token from the Planetary Computer (never stored)."""
    try:
        import planetary_computer
    except ImportError:
        raise UserError("catalog needs the planetary-computer package: pip install planetary-computer") from None
    return str(planetary_computer.sign(href))
