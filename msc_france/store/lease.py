"""One writer at a time on a store in S3: a lease object ``STORE.tiles.lock`` beside the store (the
name of the local lock file, :func:`msc_france.store.layout.lease_url`).

A local store is guarded by ``flock`` (:mod:`msc_france.lock`), which writers on other machines
cannot see. On ``s3://`` the lock is an object created with a conditional PUT (``If-None-Match: *``):
of two writers, exactly one creates it. It holds a JSON record (holder: host, pid and a random id;
the expiry time, Unix seconds of the holder's clock), renewed every ``ttl / 3`` by a background thread
while the run lives, and deleted at the end if it is still ours. A run killed with ``kill -9`` leaves
its lease behind; once expired it is taken over by a conditional PUT on its ETag (``If-Match``), so
that of two takers only one wins. A live lease of another writer: a one-line :class:`UserError`
naming the holder and when the lease expires.

Clocks: a lease is taken to be expired when the taker's clock is past the expiry the holder wrote;
machines whose clocks differ by more than a small part of ``ttl`` (60 s) shorten or lengthen leases
by that much. Other URL schemes (gs://, az://) have no lease yet.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from msc_france.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_TTL = 60.0  # seconds a lease lives without renewal
TTL_ENV = "MSC_FRANCE_LEASE_TTL"  # overrides DEFAULT_TTL (tests, slow links)


class LeaseLostError(Exception):
    """A conditional write found the lease changed: another writer holds it now."""


@dataclass(frozen=True)
class LeaseRecord:
    """What the lease object holds."""

    holder: str  # "HOST pid PID"
    id: str  # random, unique to one run
    expires: float  # Unix seconds

    def to_json(self) -> bytes:
        return json.dumps({"holder": self.holder, "id": self.id, "expires": self.expires,
                           "expires_utc": _utc(self.expires)}).encode()

    @classmethod
    def from_json(cls, body: bytes) -> LeaseRecord | None:
        """The record, or None for an object that is not one (then treated as expired)."""
        try:
            data = json.loads(body)
            return cls(str(data["holder"]), str(data["id"]), float(data["expires"]))
        except (ValueError, KeyError, TypeError):
            return None


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def default_ttl() -> float:
    text = os.environ.get(TTL_ENV)
    try:
        return float(text) if text else DEFAULT_TTL
    except ValueError:
        raise UserError(f"{TTL_ENV}={text!r} is not a number of seconds; unset it or give e.g. 60") from None


def _split(url: str) -> tuple[str, str]:
    path = url.split("://", 1)[1]
    bucket, _, key = path.partition("/")
    return bucket, key


def _precondition_failed(exc: BaseException) -> bool:
    """True when ``exc`` (or what s3fs translated it from) is a failed condition: 412, or 409
    ``ConditionalRequestConflict`` (S3: a concurrent conditional write on the same key)."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            error = response.get("Error", {})
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if error.get("Code") in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                return True
        seen = seen.__cause__
    return False


class S3Lease:
    """The lease on ``url`` (``s3://BUCKET/KEY``), through s3fs with ``storage_options``."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None, what: str, ttl: float | None = None) -> None:
        import fsspec

        self.url, self.what = url, what
        self.bucket, self.key = _split(url)
        self.ttl = default_ttl() if ttl is None else ttl
        self.fs: Any = fsspec.filesystem("s3", **(storage_options or {}))
        self.record = LeaseRecord(f"{socket.gethostname()} pid {os.getpid()}", uuid.uuid4().hex, 0.0)
        self.etag: str | None = None
        self.lost: str | None = None  # why the lease was lost while held
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- object calls ------------------------------------------------------------------------------
    def _put(self, record: LeaseRecord, **condition: str) -> str:
        try:
            answer = self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.key, Body=record.to_json(),
                                     ContentType="application/json", **condition)
        except Exception as exc:
            if isinstance(exc, FileExistsError) or _precondition_failed(exc):
                raise LeaseLostError(str(exc)) from exc
            raise
        return str(answer["ETag"])

    def read(self) -> tuple[LeaseRecord | None, str] | None:
        """The lease object's record and ETag, or None when there is none."""
        try:
            answer = self.fs.call_s3("get_object", Bucket=self.bucket, Key=self.key)
        except FileNotFoundError:
            return None
        data = _read_body(self.fs, answer["Body"])
        return LeaseRecord.from_json(data), str(answer["ETag"])

    # --- life --------------------------------------------------------------------------------------
    def acquire(self) -> None:
        """Create the lease, or take over an expired one; a one-line :class:`UserError` while another
        writer holds a live one."""
        for _ in range(3):
            record = self._next()
            try:
                self.etag = self._put(record, IfNoneMatch="*")
                self.record = record
                return
            except LeaseLostError:
                pass
            found = self.read()
            if found is None:
                continue  # released between our two calls: try again
            theirs, etag = found
            if theirs is not None and theirs.expires > time.time():
                raise self._refusal(theirs)
            record = self._next()
            try:  # expired (or not a lease record): replace exactly the object we read
                self.etag = self._put(record, IfMatch=etag)
                self.record = record
                log.warning("took over the expired lease %s of %s", self.url,
                            theirs.holder if theirs else "an unknown writer")
                return
            except LeaseLostError:
                continue  # another taker won, or it was renewed: look again
        found = self.read()
        theirs = found[0] if found else None
        if theirs is not None:
            raise self._refusal(theirs)
        raise UserError(f"{self.what}: could not take the lease {self.url} (other writers kept changing it); "
                        "rerun in a minute")

    def _next(self) -> LeaseRecord:
        return LeaseRecord(self.record.holder, self.record.id, time.time() + self.ttl)

    def _refusal(self, theirs: LeaseRecord) -> UserError:
        left = max(0, round(theirs.expires - time.time()))
        return UserError(f"{self.what} is in use by {theirs.holder} (lease {self.url}, expires {_utc(theirs.expires)}, "
                         f"in {left} s unless renewed); wait for that run to finish or stop it, then rerun "
                         "(a killed run's lease is taken over once expired)")

    def renew(self) -> None:
        """Extend the lease by ``ttl``, on the condition that it is still the object we wrote."""
        with self._lock:
            if self.lost or self.etag is None:
                return
            record = self._next()
            try:
                self.etag = self._put(record, IfMatch=self.etag)
                self.record = record
            except LeaseLostError:
                self.lost = "another writer took it over"
            except Exception as exc:  # noqa: BLE001 - transient (network, 5xx): the next tick tries again, until expiry
                log.warning("could not renew the lease %s: %s", self.url, exc)
                if time.time() > self.record.expires:
                    self.lost = f"it expired: renewal failed: {exc}"

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            self.renew()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._renew_loop, name="msc-france-lease", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """A one-line :class:`UserError` if the lease was lost while held, or is past the expiry this run
        last wrote (not renewed in time: another writer may have taken it over). Cheap (no request):
        the renewal thread finds a loss; writers call this before each record they write."""
        if self.lost is None and time.time() > self.record.expires:
            self.lost = "it expired before it could be renewed"
        if self.lost:
            raise UserError(f"lost the lease on {self.what} ({self.lost}); nothing more was written; rerun to resume")

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours (another writer's is never deleted)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self.lost or self.etag is None:
                return
            found = self.read()
            if found is None or found[0] is None or found[0].id != self.record.id:
                return
            with contextlib.suppress(FileNotFoundError):
                self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.key)
            self.etag = None


def _read_body(fs: Any, body: Any) -> bytes:  # noqa: ANN401 - s3fs and aiobotocore objects
    """The bytes of an aiobotocore streaming body, read on s3fs's event loop."""
    from fsspec.asyn import sync

    async def read() -> bytes:
        try:
            data: bytes = await body.read()
        finally:
            body.close()
        return data

    return sync(fs.loop, read)  # type: ignore[no-any-return]


@contextlib.contextmanager
def s3_lease(url: str, storage_options: dict[str, Any] | None, what: str,
             ttl: float | None = None) -> Iterator[S3Lease]:
    """Hold the lease ``url`` for the block (renewed in the background, released at the end)."""
    lease = S3Lease(url, storage_options, what, ttl)
    try:
        lease.acquire()
    except OSError as exc:  # no bucket, no access: before anything is written
        raise UserError(f"{what}: cannot write its lease {url} ({exc}); check the bucket, its endpoint "
                        "and your credentials") from None
    lease.start()
    try:
        yield lease
        lease.check()
    finally:
        lease.release()
