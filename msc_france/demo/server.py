"""Serve the demo world on loopback: a real STAC API (``rustac serve``), a Range-capable file
server for the COGs and MapProxy for the orthophotos (WMS 1.3.0 and WMTS, as the IGN Géoplateforme),
each a child process on a free port.

``demo://`` in a catalog resolves to the running servers through ``DATA/demo-world/server.json``:
``demo://`` to the STAC API, ``demo://wms-r`` to the WMS, ``demo://wmts`` to the WMTS, ``demo://wfs``
to the WFS (MapServer, where installed).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from msc_france.demo.footprint_items import ITEM_COLLECTIONS
from msc_france.demo.ogc import render_caches
from msc_france.errors import UserError

STATE_FILE = "server.json"


@dataclass(frozen=True)
class DemoServer:
    stac_url: str
    files_url: str
    ogc_url: str

    def resolve(self, url: str) -> str:
        """A catalog's ``demo://`` URL on the running servers."""
        path = url.removeprefix("demo://").strip("/")
        if path == "wms-r":
            return f"{self.ogc_url}/wms"
        if path == "wmts":
            return f"{self.ogc_url}/service"
        if path == "wfs":
            return f"{self.ogc_url}/wfs"
        if path:
            raise UserError(f"unknown demo service {url!r}; use demo://, demo://wms-r, demo://wmts or demo://wfs")
        return self.stac_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rustac_binary() -> str:
    local = Path(sys.executable).with_name("rustac")
    found = str(local) if local.exists() else shutil.which("rustac")
    if not found:
        raise UserError("rustac is not installed; run `make install` (or pip install rustac)")
    return found


def wait_ready(url: str, process: subprocess.Popen[bytes], name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UserError(f"the demo {name} exited at start (status {process.returncode}); "
                            "see server.log in the world folder")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise UserError(f"the demo {name} did not answer at {url} within {timeout:.0f} s")


def served_item_files(world: Path, files_url: str, out: Path) -> list[Path]:
    """Collections and item collections with absolute hrefs, for rustac to load: the demo scene's items
    (one file each) and the footprint world's (one item collection per collection)."""
    paths: list[Path] = []
    for collection_file in sorted((world / "stac" / "collections").glob("*.json")):
        paths.append(collection_file)
        item_files = sorted((world / "stac" / "items" / collection_file.stem).glob("*.json"))
        items = [json.loads(f.read_text()) for f in item_files]
        footprints = world / "stac" / ITEM_COLLECTIONS / collection_file.name
        if footprints.exists():
            items += json.loads(footprints.read_text())["features"]
        for item in items:
            for asset in item["assets"].values():
                asset["href"] = f"{files_url}/{asset['href']}"
        item_collection = out / f"{collection_file.stem}.items.json"
        item_collection.write_text(json.dumps({"type": "FeatureCollection", "features": items}, separators=(",", ":")))
        paths.append(item_collection)
    return paths


def _die_with_parent() -> None:
    """In the child before exec (Linux): get SIGTERM when the parent dies, even by kill -9."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a child process, killing it if it does not stop within 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def serve_world(world: Path) -> Iterator[DemoServer]:
    """Start both servers for the generated world in ``world``; stop them on exit."""
    if not (world / "world.json").exists():
        raise UserError(f"no demo world in {world}; run `msc-france demo generate` first")
    processes: list[subprocess.Popen[bytes]] = []
    state = world / STATE_FILE
    with tempfile.TemporaryDirectory(prefix="msc-demo-") as scratch:
        try:
            files_port = free_port()
            files_url = f"http://127.0.0.1:{files_port}"
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "msc_france.demo.fileserver", str(world), str(files_port)],
                preexec_fn=_die_with_parent,
            ))
            wait_ready(f"{files_url}/world.json", processes[-1], "file server")
            stac_port = free_port()
            stac_url = f"http://127.0.0.1:{stac_port}"
            sources = served_item_files(world, files_url, Path(scratch))
            log = open(world / "server.log", "ab")  # noqa: SIM115 - closed with the process
            processes.append(subprocess.Popen(
                [rustac_binary(), "serve", "--addr", f"127.0.0.1:{stac_port}", *map(str, sources)],
                stdout=log, stderr=log, preexec_fn=_die_with_parent,
            ))
            log.close()
            wait_ready(f"{stac_url}/collections", processes[-1], "STAC API")
            ogc_port = free_port()
            ogc_url = f"http://127.0.0.1:{ogc_port}"
            render_caches(world)
            log = open(world / "ogc.log", "ab")  # noqa: SIM115 - closed with the process
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "msc_france.demo.ogc", str(world), str(ogc_port)],
                stdout=log, stderr=log, preexec_fn=_die_with_parent,
            ))
            log.close()
            wait_ready(f"{ogc_url}/wms?SERVICE=WMS&REQUEST=GetCapabilities", processes[-1], "WMS (MapProxy)")
            server = DemoServer(stac_url=stac_url, files_url=files_url, ogc_url=ogc_url)
            state.write_text(json.dumps({"stac_url": stac_url, "files_url": files_url, "ogc_url": ogc_url,
                                         "pid": os.getpid()}))
            yield server
        finally:
            state.unlink(missing_ok=True)
            for process in reversed(processes):
                stop_process(process)


def running_server(world: Path) -> DemoServer | None:
    """The demo server recorded in ``world`` if its owner process is still alive."""
    state = world / STATE_FILE
    if not state.exists():
        return None
    data = json.loads(state.read_text())
    try:
        os.kill(int(data["pid"]), 0)
    except (ProcessLookupError, PermissionError, ValueError, KeyError):
        return None
    if "ogc_url" not in data:
        return None
    return DemoServer(stac_url=data["stac_url"], files_url=data["files_url"], ogc_url=data["ogc_url"])
