"""A fault-injecting HTTP reverse proxy for tests, run as a real server in its own process.

Every request is forwarded to an upstream base URL (method, path, query, headers including
``Range``) and the upstream status, headers (``Content-Range``, ``Content-Length``,
``Accept-Ranges``...) and body are streamed back. Faults are scheduled over HTTP under ``/_faults``:

* ``POST /_faults`` with a JSON rule or list of rules: appends them;
* ``GET /_faults``: the rules with their ``remaining`` and ``fired`` counts;
* ``DELETE /_faults``: removes every rule; ``DELETE /_faults/log``: empties the request log;
* ``GET /_faults/log``: the request log, oldest first; ``GET /_faults/health``: readiness.

A rule is ``{"match": "<substring of the path>", "fault": ..., "times": N, ...options}``; the first
rule (in the order added) that matches a request and has firings left fires, then the request
passes through once its rule is spent. ``match`` is a substring of the URL path (``""`` matches
everything); the option ``method`` restricts a rule to one method (``"GET"``: HEAD requests pass).

* ``"429"`` / ``"503"`` (any status 400-599 in fact): that status; ``retry_after`` adds a
  ``Retry-After`` header (written as given: HTTP wants whole seconds).
* ``"403"``: Azure's ``AuthenticationFailed`` XML answer. With ``require_sig: TOKEN`` it is a
  standing rule (``times`` does not apply): every matching request whose query string lacks
  ``sig=TOKEN`` gets the 403, one carrying it goes on to the next rules / upstream.
* ``"truncate"``: the upstream status and headers (``Content-Length`` is the full length) but only
  ``keep_bytes`` (default 0) bytes of body, then the connection is closed (a FIN).
* ``"slow"``: waits ``delay`` seconds before the response head; with ``keep_bytes`` the head and
  ``keep_bytes`` body bytes go out at once and the stall happens mid-body instead.
* ``"reset"``: the connection is aborted with a TCP RST (``SO_LINGER`` 0) right after the
  request is read; with ``keep_bytes`` the head and that many body bytes are sent first.

Log entries: ``id, method, path, query, range, status, bytes_sent, content_length, fault, rule,
outcome`` plus the times ``t_start``/``t_head``/``t_end`` (``time.time()``) and
``mono_start``/``mono_head``/``mono_end`` (``time.monotonic()``, system-wide on Linux, so comparable
with the test process). ``outcome`` is ``ok``, ``fault``, ``truncated``, ``reset``,
``client-gone``, ``upstream-error`` or ``pending`` while in flight.

The server is stdlib only (asyncio streams), so ``reset`` and ``truncate`` are exact. Run it as
``python -m tests.faultproxy UPSTREAM_URL PORT [READY_FILE] [--watch-stdin]``: PORT 0 picks a free
port; once listening it writes ``{"url", "port", "pid"}`` to READY_FILE. It exits by itself when its
parent dies (parent pid polled; with ``--watch-stdin`` also on end of file on stdin).

From tests use :func:`fault_proxy` (a context manager yielding :class:`FaultProxy`), or the pytest
fixtures in ``tests/faults_fixtures.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msc_france.demo.server import stop_process

CONTROL_PREFIX = "/_faults"
NAMED_FAULTS = {"truncate", "slow", "reset"}
OPTIONS = {"retry_after", "delay", "keep_bytes", "require_sig", "method"}
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "upgrade", "expect",
}
MAX_HEAD = 256 * 1024
MAX_LOG = 20_000
IDLE_TIMEOUT = 120.0
UPSTREAM_TIMEOUT = 60.0
CHUNK = 64 * 1024
REASONS = {
    200: "OK", 206: "Partial Content", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
    411: "Length Required", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


def validate_rule(raw: object) -> dict[str, Any]:
    """A normalised copy of one rule; ``ValueError`` with a readable message when it is wrong."""
    if not isinstance(raw, dict):
        raise ValueError(f"a rule is a JSON object, not {raw!r}")
    unknown = set(raw) - OPTIONS - {"match", "fault", "times"}
    if unknown:
        raise ValueError(f"unknown rule keys {sorted(unknown)}")
    match = raw.get("match", "")
    if not isinstance(match, str):
        raise ValueError("'match' must be a string (a substring of the path)")
    fault = str(raw.get("fault", ""))
    if fault not in NAMED_FAULTS and not (fault.isdigit() and 400 <= int(fault) <= 599):
        raise ValueError(f"unknown fault {fault!r}: use truncate, slow, reset or an HTTP status 400-599")
    times = raw.get("times", 1)
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        raise ValueError("'times' must be an integer >= 1")
    rule: dict[str, Any] = {"match": match, "fault": fault, "times": times, "remaining": times, "fired": 0}
    for key in ("retry_after", "delay"):
        if raw.get(key) is not None:
            value = raw[key]
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ValueError(f"'{key}' must be a number of seconds >= 0")
            rule[key] = value
    if raw.get("keep_bytes") is not None:
        if not isinstance(raw["keep_bytes"], int) or raw["keep_bytes"] < 0:
            raise ValueError("'keep_bytes' must be an integer >= 0")
        rule["keep_bytes"] = raw["keep_bytes"]
    if raw.get("require_sig") is not None:
        if fault != "403" or not isinstance(raw["require_sig"], str) or not raw["require_sig"]:
            raise ValueError("'require_sig' needs fault '403' and a non-empty token")
        rule["require_sig"] = raw["require_sig"]
    if raw.get("method") is not None:
        rule["method"] = str(raw["method"]).upper()
    if fault == "slow" and "delay" not in rule:
        raise ValueError("fault 'slow' needs 'delay' (seconds)")
    return rule


def _has_sig(query: str, token: str) -> bool:
    values = urllib.parse.parse_qs(query, keep_blank_values=True).get("sig", [])
    raw = [part.split("=", 1)[1] for part in query.split("&") if part.startswith("sig=")]
    return token in values or token in raw


def pick_rule(rules: list[dict[str, Any]], method: str, path: str, query: str) -> dict[str, Any] | None:
    """The rule that fires for this request (its counters updated), or ``None`` to pass through."""
    for rule in rules:
        if rule["match"] not in path or rule.get("method", method) != method:
            continue
        if "require_sig" in rule:
            if _has_sig(query, rule["require_sig"]):
                continue
            rule["fired"] += 1
            return rule
        if rule["remaining"] > 0:
            rule["remaining"] -= 1
            rule["fired"] += 1
            return rule
    return None


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def keep_alive(self) -> bool:
        connection = (self.header("connection") or "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


class BadRequestError(Exception):
    pass


def parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        if ":" not in line:
            raise BadRequestError(f"bad header line {line!r}")
        name, value = line.split(":", 1)
        headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _azure_403() -> bytes:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime())
    return (
        '\ufeff<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code>'
        "<Message>Server failed to authenticate the request. Make sure the value of Authorization header "
        f"is formed correctly including the signature.\nRequestId:00000000-0000-0000-0000-000000000000\nTime:{now}"
        "</Message><AuthenticationErrorDetail>Signed expiry time [Thu, 01 Jan 2020 00:00:00 GMT] must be after "
        f"signed start time [{time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}]"
        "</AuthenticationErrorDetail></Error>"
    ).encode()


class Proxy:
    def __init__(self, upstream: str) -> None:
        parts = urllib.parse.urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SystemExit(f"upstream must be an http(s) URL, not {upstream!r}")
        self.upstream = upstream
        self.up_host = parts.hostname
        self.up_port = parts.port or (443 if parts.scheme == "https" else 80)
        self.up_ssl = parts.scheme == "https"
        self.up_hostport = parts.netloc
        self.up_prefix = parts.path.rstrip("/")
        self.rules: list[dict[str, Any]] = []
        self.log: list[dict[str, Any]] = []
        self.next_id = 0

    # -- connection loop ---------------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        aborted = False
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
                    break
                try:
                    request = await self.read_request(head, reader, writer)
                except BadRequestError as exc:
                    await self.simple(writer, 400, str(exc).encode(), keep_alive=False)
                    break
                if request.path == CONTROL_PREFIX or request.path.startswith(CONTROL_PREFIX + "/"):
                    keep = await self.control(request, writer)
                else:
                    keep, aborted = await self.forward(request, writer)
                if not keep:
                    break
        except ConnectionError:
            pass
        finally:
            if not aborted:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

    async def read_request(self, head: bytes, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> Request:
        start, headers = parse_head(head)
        parts = start.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequestError(f"bad request line {start!r}")
        request = Request(parts[0].upper(), parts[1], parts[2], headers)
        if urllib.parse.urlsplit(request.target).scheme:  # absolute-form target
            split = urllib.parse.urlsplit(request.target)
            request.target = split.path + (f"?{split.query}" if split.query else "")
        if "chunked" in (request.header("transfer-encoding") or "").lower():
            raise BadRequestError("chunked request bodies are not supported; send Content-Length")
        length = int(request.header("content-length") or 0)
        if length:
            if (request.header("expect") or "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                await writer.drain()
            request.body = await asyncio.wait_for(reader.readexactly(length), IDLE_TIMEOUT)
        return request

    # -- responses ---------------------------------------------------------------------------

    @staticmethod
    def head_bytes(status: int, reason: str, headers: list[tuple[str, str]]) -> bytes:
        lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def simple(self, writer: asyncio.StreamWriter, status: int, body: bytes, *, keep_alive: bool,
                     content_type: str = "text/plain; charset=utf-8",
                     extra: list[tuple[str, str]] | None = None, send_body: bool = True) -> None:
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *(extra or [])]
        if not keep_alive:
            headers.append(("Connection", "close"))
        writer.write(self.head_bytes(status, REASONS.get(status, "Error"), headers) + (body if send_body else b""))
        await writer.drain()

    # -- control API -------------------------------------------------------------------------

    async def control(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        route = (request.method, request.path.rstrip("/"))
        status, payload = 200, None
        if route == ("GET", CONTROL_PREFIX):
            payload = {"rules": self.rules}
        elif route == ("POST", CONTROL_PREFIX):
            try:
                data = json.loads(request.body or b"null")
                new = [validate_rule(r) for r in (data if isinstance(data, list) else [data])]
            except ValueError as exc:
                status, payload = 400, {"error": str(exc)}
            else:
                self.rules.extend(new)
                payload = {"added": len(new), "rules": self.rules}
        elif route == ("DELETE", CONTROL_PREFIX):
            self.rules.clear()
            payload = {"rules": self.rules}
        elif route == ("GET", CONTROL_PREFIX + "/log"):
            payload = self.log
        elif route == ("DELETE", CONTROL_PREFIX + "/log"):
            self.log.clear()
            payload = {"log": 0}
        elif route == ("GET", CONTROL_PREFIX + "/health"):
            payload = {"ok": True, "upstream": self.upstream, "pid": os.getpid()}
        else:
            status, payload = 404, {"error": f"no control endpoint {request.method} {request.path}"}
        body = json.dumps(payload).encode()
        await self.simple(writer, status, body, keep_alive=request.keep_alive, content_type="application/json")
        return request.keep_alive

    # -- proxying ----------------------------------------------------------------------------

    def new_entry(self, request: Request) -> dict[str, Any]:
        self.next_id += 1
        entry: dict[str, Any] = {
            "id": self.next_id, "method": request.method, "path": request.path, "query": request.query,
            "range": request.header("range"), "status": None, "bytes_sent": 0, "content_length": None,
            "fault": None, "rule": None, "outcome": "pending",
            "t_start": time.time(), "mono_start": time.monotonic(),
            "t_head": None, "mono_head": None, "t_end": None, "mono_end": None,
        }
        self.log.append(entry)
        del self.log[:-MAX_LOG]
        return entry

    @staticmethod
    def stamp(entry: dict[str, Any], when: str) -> None:
        entry[f"t_{when}"] = time.time()
        entry[f"mono_{when}"] = time.monotonic()

    async def forward(self, request: Request, writer: asyncio.StreamWriter) -> tuple[bool, bool]:
        """Serve one proxied request; returns (keep the connection, connection aborted)."""
        entry = self.new_entry(request)
        try:
            return await self._forward(request, writer, entry)
        except ConnectionError:
            entry["outcome"] = "client-gone"
            return False, False
        except (TimeoutError, asyncio.IncompleteReadError, OSError) as exc:
            entry["outcome"] = "upstream-error"
            entry["error"] = repr(exc)
            return False, False
        finally:
            if entry["t_end"] is None:
                self.stamp(entry, "end")
            if entry["outcome"] == "pending":
                entry["outcome"] = "ok"

    async def _forward(self, request: Request, writer: asyncio.StreamWriter,
                       entry: dict[str, Any]) -> tuple[bool, bool]:
        rule = pick_rule(self.rules, request.method, request.path, request.query)
        fault = rule["fault"] if rule else None
        if rule:
            entry["fault"] = fault
            entry["rule"] = {k: v for k, v in rule.items() if k not in ("remaining", "fired")}
        keep_bytes = rule.get("keep_bytes") if rule else None

        if fault == "reset" and keep_bytes is None:
            self.abort(writer, entry)
            return False, True
        if fault and fault.isdigit():
            status = int(fault)
            extra = []
            if rule and rule.get("retry_after") is not None:
                value = rule["retry_after"]
                extra.append(("Retry-After", str(int(value)) if float(value).is_integer() else str(value)))
            if status == 403:
                body, ctype = _azure_403(), "application/xml"
                extra.append(("x-ms-error-code", "AuthenticationFailed"))
            else:
                body, ctype = f"{status} {REASONS.get(status, 'Error')} (injected fault)\n".encode(), "text/plain"
            self.stamp(entry, "head")
            await self.simple(writer, status, body, keep_alive=request.keep_alive, content_type=ctype,
                              extra=extra, send_body=request.method != "HEAD")
            entry.update(status=status, outcome="fault", content_length=len(body),
                         bytes_sent=len(body) if request.method != "HEAD" else 0)
            return request.keep_alive, False
        if fault == "slow" and keep_bytes is None:
            await asyncio.sleep(rule["delay"])  # type: ignore[index]

        try:
            up_reader, up_writer, status, reason, headers = await self.open_upstream(request)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, BadRequestError) as exc:
            body = f"upstream error: {exc!r}\n".encode()
            self.stamp(entry, "head")
            await self.simple(writer, 502, body, keep_alive=False)
            entry.update(status=502, outcome="upstream-error", bytes_sent=len(body))
            return False, False
        try:
            return await self.relay(request, writer, entry, rule, up_reader, status, reason, headers)
        finally:
            up_writer.close()

    async def open_upstream(self, request: Request) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, str,
                                                             list[tuple[str, str]]]:
        context = ssl.create_default_context() if self.up_ssl else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.up_host, self.up_port, ssl=context, limit=MAX_HEAD), UPSTREAM_TIMEOUT)
        headers = [(k, v) for k, v in request.headers if k.lower() not in HOP_BY_HOP | {"host", "content-length"}]
        headers = [("Host", self.up_hostport), *headers, ("Connection", "close")]
        if request.body:
            headers.append(("Content-Length", str(len(request.body))))
        lines = [f"{request.method} {self.up_prefix}{request.target} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body)
        await writer.drain()
        while True:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), UPSTREAM_TIMEOUT)
            start, response_headers = parse_head(head)
            parts = start.split(" ", 2)
            status = int(parts[1])
            if status >= 200 or status == 101:
                return reader, writer, status, parts[2] if len(parts) > 2 else "", response_headers

    async def relay(self, request: Request, writer: asyncio.StreamWriter, entry: dict[str, Any],
                    rule: dict[str, Any] | None, up_reader: asyncio.StreamReader, status: int, reason: str,
                    headers: list[tuple[str, str]]) -> tuple[bool, bool]:
        fault = rule["fault"] if rule else None
        keep_bytes = rule.get("keep_bytes") if rule else None
        lookup = {k.lower(): v for k, v in headers}
        chunked = "chunked" in lookup.get("transfer-encoding", "").lower()
        length: int | None
        if request.method == "HEAD" or status in (204, 304) or status < 200:
            length = 0
        elif "content-length" in lookup:
            length = int(lookup["content-length"])
        else:
            length = None  # until the upstream closes
        entry["content_length"] = int(lookup["content-length"]) if "content-length" in lookup else None
        keep = request.keep_alive and (length is not None or chunked) and fault not in ("truncate", "reset")
        out = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
        if not keep:
            out.append(("Connection", "close"))
        writer.write(self.head_bytes(status, reason or REASONS.get(status, ""), out))
        self.stamp(entry, "head")
        entry["status"] = status
        limit = keep_bytes if fault in ("truncate", "reset") else None
        if fault == "truncate" and limit is None:
            limit = 0
        stall_after = keep_bytes if fault == "slow" and keep_bytes is not None else None
        remaining = length
        sent = 0
        while remaining is None or remaining > 0:
            want = CHUNK if remaining is None else min(CHUNK, remaining)
            if limit is not None:
                want = min(want, limit - sent)
            if stall_after is not None and sent < stall_after:
                want = min(want, stall_after - sent)
            if want <= 0 and limit is not None:
                break
            chunk = await asyncio.wait_for(up_reader.read(want), UPSTREAM_TIMEOUT) if want > 0 else b""
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
            entry["bytes_sent"] = sent
            if remaining is not None:
                remaining -= len(chunk)
            if stall_after is not None and sent >= stall_after:
                await asyncio.sleep(rule["delay"])  # type: ignore[index]
                stall_after = None
        await writer.drain()
        if fault == "reset":
            await self.flushed(writer)
            self.abort(writer, entry)
            return False, True
        if fault == "truncate":
            entry["outcome"] = "truncated" if remaining is None or remaining > 0 else "ok"
            self.stamp(entry, "end")
            return False, False
        if remaining:  # the upstream closed early
            entry["outcome"] = "upstream-error"
            return False, False
        return keep, False

    @staticmethod
    async def flushed(writer: asyncio.StreamWriter, limit: float = 2.0) -> None:
        """Wait (bounded) until the kernel has sent our bytes, so an RST does not discard them."""
        sock = writer.get_extra_info("socket")
        if sock is None:
            return
        for _ in range(int(limit / 0.01)):
            try:
                unsent = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
            except OSError:
                return
            if unsent == 0:
                return
            await asyncio.sleep(0.01)

    def abort(self, writer: asyncio.StreamWriter, entry: dict[str, Any]) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        entry["outcome"] = "reset"
        self.stamp(entry, "end")


async def _watch_parent(parent: int) -> None:
    while True:
        await asyncio.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def _watch_stdin() -> None:
    with contextlib.suppress(Exception):
        while sys.stdin.buffer.read(1024):
            pass
    os._exit(0)


async def serve(upstream: str, port: int, ready_file: str | None, watch_stdin: bool) -> None:
    parent = int(os.environ.get("FAULTPROXY_PARENT_PID") or os.getppid())
    proxy = Proxy(upstream)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", port, limit=MAX_HEAD, reuse_address=True)
    actual = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{actual}"
    if ready_file:
        tmp = f"{ready_file}.tmp"
        Path(tmp).write_text(json.dumps({"url": url, "port": actual, "pid": os.getpid(), "upstream": upstream}))
        os.replace(tmp, ready_file)
    else:
        print(f"fault proxy on {url} -> {upstream}", flush=True)
    if watch_stdin:
        threading.Thread(target=_watch_stdin, daemon=True).start()
    watchdog = asyncio.create_task(_watch_parent(parent))
    async with server:
        await server.serve_forever()
    watchdog.cancel()


def main(argv: list[str]) -> None:
    args = [a for a in argv if not a.startswith("--")]
    if len(args) not in (2, 3):
        raise SystemExit("usage: python -m tests.faultproxy UPSTREAM_URL PORT [READY_FILE] [--watch-stdin]")
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args[0], int(args[1]), args[2] if len(args) == 3 else None, "--watch-stdin" in argv))


# --------------------------------------------------------------------------------------------
# Client side, for tests
# --------------------------------------------------------------------------------------------


class FaultProxyError(RuntimeError):
    pass


@dataclass
class FaultProxy:
    """Handle on a running proxy: ``url`` replaces the upstream base URL in the code under test."""

    url: str
    upstream: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def _call(self, method: str, path: str, payload: object = None) -> Any:  # noqa: ANN401 - a JSON value
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + CONTROL_PREFIX + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            if exc.code == 400:
                raise ValueError(json.loads(detail).get("error", detail)) from None
            raise FaultProxyError(f"{method} {path}: HTTP {exc.code} {detail}") from None

    def add(self, match: str, fault: str | int, times: int = 1, **options: Any) -> None:
        """Schedule ``fault`` for requests whose path contains ``match`` (see the module docstring)."""
        self._call("POST", "", [{"match": match, "fault": str(fault), "times": times, **options}])

    def add_rules(self, rules: list[dict[str, Any]]) -> None:
        self._call("POST", "", rules)

    def rules(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "")["rules"])

    def clear(self, log: bool = True) -> None:
        """Remove every rule and, unless ``log=False``, empty the request log."""
        self._call("DELETE", "")
        if log:
            self._call("DELETE", "/log")

    def log(self) -> list[dict[str, Any]]:
        """Proxied requests, oldest first (control requests are not logged)."""
        return list(self._call("GET", "/log"))

    def href(self, relative: str) -> str:
        return f"{self.url}/{relative.lstrip('/')}"


ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def fault_proxy(upstream: str, timeout: float = 30.0) -> Iterator[FaultProxy]:
    """Start a proxy process in front of ``upstream`` on a free loopback port; stop it on exit."""
    with tempfile.TemporaryDirectory(prefix="faultproxy-") as scratch:
        ready = Path(scratch) / "ready.json"
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.faultproxy", upstream.rstrip("/"), "0", str(ready), "--watch-stdin"],
            cwd=ROOT, stdin=subprocess.PIPE, env={**os.environ, "FAULTPROXY_PARENT_PID": str(os.getpid())},
        )
        try:
            deadline = time.monotonic() + timeout
            proxy = None
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise FaultProxyError(f"the fault proxy exited at start (status {process.returncode})")
                if ready.exists():
                    info = json.loads(ready.read_text())
                    candidate = FaultProxy(url=info["url"], upstream=upstream.rstrip("/"), process=process)
                    with contextlib.suppress(OSError, FaultProxyError, ValueError):
                        if candidate._call("GET", "/health")["ok"]:
                            proxy = candidate
                            break
                time.sleep(0.05)
            if proxy is None:
                raise FaultProxyError(f"the fault proxy did not start within {timeout:.0f} s")
            yield proxy
        finally:
            if process.stdin:
                with contextlib.suppress(OSError):
                    process.stdin.close()
            stop_process(process)


if __name__ == "__main__":
    main(sys.argv[1:])
