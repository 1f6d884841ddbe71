"""The fault-injecting proxy itself, in front of the served tiny demo world: pass-through is exact,
each fault fires as many times as scheduled and then the request passes, and the log records it all."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from msc_france.demo.server import DemoServer
from tests import faultproxy
from tests.faultproxy import FaultProxy

World = tuple[Path, dict[str, Any]]


@pytest.fixture(scope="module")
def vhr_href(tiny_world: World) -> str:
    item = json.loads((tiny_world[0] / "stac" / "items" / "demo-vhr" / "vhr-0.json").read_text())
    href = item["assets"]["image"]["href"]
    assert not href.startswith("http") and (tiny_world[0] / href).is_file()
    return str(href)


def get(url: str, range_: str | None = None, timeout: float = 10) -> tuple[int, http.client.HTTPMessage, bytes]:
    request = urllib.request.Request(url, headers={"Range": range_} if range_ else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read()


def test_range_pass_through_is_identical(fault_proxy: FaultProxy, served_world: DemoServer,
                                         tiny_world: World, vhr_href: str) -> None:
    direct = get(f"{served_world.files_url}/{vhr_href}", "bytes=1000-5999")
    proxied = get(fault_proxy.href(vhr_href), "bytes=1000-5999")
    assert direct[0] == proxied[0] == 206
    assert proxied[2] == direct[2] == (tiny_world[0] / vhr_href).read_bytes()[1000:6000]
    for name in ("Content-Range", "Content-Length", "Accept-Ranges", "ETag"):
        assert proxied[1][name] == direct[1][name], name
    assert proxied[1]["Content-Range"] == f"bytes 1000-5999/{(tiny_world[0] / vhr_href).stat().st_size}"
    [entry] = fault_proxy.log()
    assert entry["method"] == "GET" and entry["path"] == f"/{vhr_href}" and entry["range"] == "bytes=1000-5999"
    assert (entry["status"], entry["bytes_sent"], entry["fault"], entry["outcome"]) == (206, 5000, None, "ok")


def test_keep_alive_head_then_get(fault_proxy: FaultProxy, tiny_world: World, vhr_href: str) -> None:
    size = (tiny_world[0] / vhr_href).stat().st_size
    host, port = fault_proxy.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("HEAD", f"/{vhr_href}")
        head = connection.getresponse()
        assert head.status == 200 and int(head.headers["Content-Length"]) == size and head.read() == b""
        connection.request("GET", f"/{vhr_href}?x=1", headers={"Range": f"bytes={size - 10}-"})
        tail = connection.getresponse()
        assert tail.status == 206 and tail.read() == (tiny_world[0] / vhr_href).read_bytes()[-10:]
    finally:
        connection.close()
    log = fault_proxy.log()
    assert [(e["method"], e["query"], e["status"]) for e in log] == [("HEAD", "", 200), ("GET", "x=1", 206)]


def test_429_with_retry_after_then_pass(fault_proxy: FaultProxy, vhr_href: str) -> None:
    fault_proxy.add("demo-vhr", "429", times=1, retry_after=2)
    status, headers, _ = get(fault_proxy.href(vhr_href), "bytes=0-99")
    assert status == 429 and headers["Retry-After"] == "2"
    status, _, body = get(fault_proxy.href(vhr_href), "bytes=0-99")
    assert status == 206 and len(body) == 100
    log = fault_proxy.log()
    assert [(e["status"], e["fault"]) for e in log] == [(429, "429"), (206, None)]
    assert log[0]["rule"]["retry_after"] == 2
    assert log[0]["mono_start"] <= log[1]["mono_start"], "timestamps let a test check the client's back-off"


def test_503_twice_then_pass_only_on_matching_paths(fault_proxy: FaultProxy, vhr_href: str) -> None:
    fault_proxy.add("image.tif", 503, times=2)
    assert get(fault_proxy.href("world.json"))[0] == 200, "a path the rule does not match passes"
    statuses = [get(fault_proxy.href(vhr_href), "bytes=0-9")[0] for _ in range(3)]
    assert statuses == [503, 503, 206]
    assert "Retry-After" not in get(fault_proxy.href(vhr_href))[1]
    [rule] = fault_proxy.rules()
    assert (rule["remaining"], rule["fired"]) == (0, 2)
    assert [e["fault"] for e in fault_proxy.log()] == [None, "503", "503", None, None]


def test_expired_sas_token_needs_the_new_signature(fault_proxy: FaultProxy, vhr_href: str) -> None:
    fault_proxy.add("cogs/", "403", require_sig="new%2Btoken=")
    old = fault_proxy.href(vhr_href) + "?se=2020-01-01T00%3A00%3A00Z&sp=r&sig=old"
    for _ in range(2):  # a standing rule: `times` does not apply
        status, headers, body = get(old, "bytes=0-9")
        assert status == 403 and headers["x-ms-error-code"] == "AuthenticationFailed"
        assert b"<Code>AuthenticationFailed</Code>" in body
    new = fault_proxy.href(vhr_href) + "?se=2099-01-01T00%3A00%3A00Z&sp=r&sig=new%2Btoken="
    status, _, body = get(new, "bytes=0-9")
    assert status == 206 and len(body) == 10
    assert get(fault_proxy.href("world.json"))[0] == 200
    log = fault_proxy.log()
    assert [e["status"] for e in log] == [403, 403, 206, 200]
    assert "sig=new%2Btoken=" in log[2]["query"] and log[2]["fault"] is None


def test_truncate_sends_fewer_bytes_than_content_length(fault_proxy: FaultProxy, vhr_href: str) -> None:
    fault_proxy.add("image.tif", "truncate", keep_bytes=100)
    request = urllib.request.Request(fault_proxy.href(vhr_href), headers={"Range": "bytes=0-999"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 206 and response.headers["Content-Length"] == "1000"
        with pytest.raises(http.client.IncompleteRead) as caught:
            response.read()
    assert len(caught.value.partial) == 100
    assert len(get(fault_proxy.href(vhr_href), "bytes=0-999")[2]) == 1000, "then it passes"
    first = fault_proxy.log()[0]
    assert (first["status"], first["content_length"], first["bytes_sent"], first["outcome"]) == (
        206, 1000, 100, "truncated")


def test_slow_response_is_delayed_and_intact(fault_proxy: FaultProxy, tiny_world: World, vhr_href: str) -> None:
    expected = (tiny_world[0] / vhr_href).read_bytes()[:2000]
    fault_proxy.add("image.tif", "slow", delay=0.3)
    fault_proxy.add("image.tif", "slow", delay=0.3, keep_bytes=500)  # stalls mid-body instead
    for _ in range(3):
        status, _, body = get(fault_proxy.href(vhr_href), "bytes=0-1999")
        assert status == 206 and body == expected
    log = fault_proxy.log()
    assert [e["fault"] for e in log] == ["slow", "slow", None]
    assert log[0]["rule"]["delay"] == 0.3 and "keep_bytes" not in log[0]["rule"]
    assert log[1]["rule"]["keep_bytes"] == 500
    assert all(e["outcome"] == "ok" and e["bytes_sent"] == 2000 for e in log)


def test_reset_aborts_the_connection(fault_proxy: FaultProxy, vhr_href: str) -> None:
    fault_proxy.add("image.tif", "reset")
    with pytest.raises(ConnectionResetError):
        get(fault_proxy.href(vhr_href), "bytes=0-99")
    fault_proxy.add("image.tif", "reset", keep_bytes=50)  # mid-body
    with pytest.raises((ConnectionResetError, http.client.IncompleteRead)):
        get(fault_proxy.href(vhr_href), "bytes=0-999")
    assert get(fault_proxy.href(vhr_href), "bytes=0-99")[0] == 206
    assert [(e["fault"], e["outcome"]) for e in fault_proxy.log()] == [("reset", "reset"), ("reset", "reset"),
                                                                      (None, "ok")]


def test_control_api_validates_and_clears(fault_proxy: FaultProxy, vhr_href: str) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        fault_proxy.add("x", "explode")
    with pytest.raises(ValueError, match="delay"):
        fault_proxy.add("x", "slow")
    with pytest.raises(ValueError, match="unknown rule keys"):
        fault_proxy.add("x", "503", retry_afterr=1)
    fault_proxy.add("image.tif", "503", times=5, method="GET")
    assert get(fault_proxy.href(vhr_href))[0] == 503
    request = urllib.request.Request(fault_proxy.href(vhr_href), method="HEAD")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200, "the rule is for GET only"
    fault_proxy.clear()
    assert fault_proxy.rules() == [] and fault_proxy.log() == []
    assert get(fault_proxy.href(vhr_href), "bytes=0-0")[0] == 206


GDAL_OPTIONS = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_MAX_RETRY": "0"}


def test_rasterio_reads_a_cog_window_through_the_proxy(fault_proxy: FaultProxy, tiny_world: World,
                                                       vhr_href: str) -> None:
    window = Window(100, 120, 64, 48)
    # No /vsicurl/ cache for the proxy, so every open really goes through it.
    with rasterio.Env(**GDAL_OPTIONS, CPL_VSIL_CURL_NON_CACHED=f"/vsicurl/{fault_proxy.url}"):
        with rasterio.open(fault_proxy.href(vhr_href)) as remote, rasterio.open(tiny_world[0] / vhr_href) as local:
            assert np.array_equal(remote.read(window=window), local.read(window=window))
        log = fault_proxy.log()
        assert log and all(e["path"] == f"/{vhr_href}" and e["status"] in (200, 206) for e in log)
        assert any(e["range"] for e in log), "GDAL read the COG with range requests"
        fault_proxy.clear()
        fault_proxy.add("image.tif", "503", times=1, method="GET")
        with pytest.raises(RasterioIOError), rasterio.open(fault_proxy.href(vhr_href)) as remote:
            remote.read(window=window)
        gets = [e["status"] for e in fault_proxy.log() if e["method"] == "GET"]
        assert gets == [503], "GDAL did not retry behind our back"


def test_proxy_exits_when_its_parent_dies(served_world: DemoServer, tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    # A parent that starts the proxy, waits until it listens, then exits without stopping it.
    script = (
        "import os, subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-m', 'tests.faultproxy', *sys.argv[1:]])\n"
        "for _ in range(300):\n"
        "    if os.path.exists(sys.argv[3]) or p.poll() is not None: break\n"
        "    time.sleep(0.05)\n"
        "print(p.pid)\n"
    )
    parent = subprocess.run([sys.executable, "-c", script, served_world.files_url, "0", str(ready)],
                            cwd=faultproxy.ROOT, capture_output=True, text=True, timeout=30, check=True)
    pid = int(parent.stdout)
    assert json.loads(ready.read_text())["pid"] == pid, "the proxy did start"
    for _ in range(200):  # bounded: 20 s at most
        if not _alive(pid):
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        pytest.fail("the orphaned proxy kept running")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        status = Path(f"/proc/{pid}/status").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return False
    return "\nState:\tZ" not in status
