"""Connection resets during ranged reads, and secrets: a download signed through the Planetary
Computer path with keys in the environment, then tiles, writes no key and no SAS token anywhere."""

from __future__ import annotations

import io
import os
import re
import secrets
from pathlib import Path
from typing import Any

import planetary_computer
import pytest
import yaml
from rich.console import Console

from msc_france.download.http import RangeClient, RetryPolicy, Transfer, http_client, no_signing
from msc_france.download.run import run_download
from msc_france.tiles.run import TilesRequest, run_tiles
from tests.faultproxy import FaultProxy
from tests.test_download import _request, proxied_api  # noqa: F401 - proxied_api is a fixture

World = tuple[Path, dict[str, Any]]
SAS = re.compile(rb"[?&](?:st|se|sp|sv|sr|sig|skoid)=")  # the query fields of an Azure SAS token


@pytest.mark.parametrize("keep_bytes", [0, 300], ids=["before-the-body", "mid-body"])
def test_connection_resets_are_retried(fault_proxy: FaultProxy, tiny_world: World, keep_bytes: int) -> None:
    fault_proxy.add("image.tif", "reset", times=2, keep_bytes=keep_bytes)
    transfer = Transfer()
    reader = RangeClient(fault_proxy.href("cogs/demo-vhr/0/image.tif"), http_client(), no_signing,
                         RetryPolicy(sleep=lambda s: None), transfer)
    assert reader.read(2000, 5000) == (tiny_world[0] / "cogs/demo-vhr/0/image.tif").read_bytes()[2000:7000]
    assert len([e for e in fault_proxy.log() if e["outcome"] == "reset"]) == 2
    assert transfer.retries >= 1, "a reset that cut the body short was retried"


def _leaks(root: Path, needles: list[bytes]) -> list[str]:
    """Files under ``root`` that hold one of ``needles`` or a SAS query field."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        content = path.read_bytes()
        if SAS.search(content) or any(n in content for n in needles):
            found.append(str(path.relative_to(root)))
    return found


def test_keys_and_signed_urls_never_reach_files_or_logs(
    tmp_path: Path, proxied_api: str, fault_proxy: FaultProxy, tiny_world: World, cluster: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
) -> None:
    key, aws_key, aws_secret = (secrets.token_hex(16) for _ in range(3))
    monkeypatch.setenv("PC_SDK_SUBSCRIPTION_KEY", key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", aws_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws_secret)

    def sign(href: str) -> str:  # what planetary_computer.sign returns, from the key in the environment
        subscription = os.environ["PC_SDK_SUBSCRIPTION_KEY"]
        return (f"{href}?st=2026-12-01T00%3A00%3A00Z&se=2026-12-02T00%3A00%3A00Z&sp=rl&sv=2024-05-04&sr=c"
                f"&skoid={subscription}&sig=SIGNED{subscription[:8]}")

    monkeypatch.setattr(planetary_computer, "sign", sign)
    data = tmp_path / "d"
    request = _request(tmp_path, proxied_api, tiny_world, data, concurrency=2)
    catalog = Path(request.catalog)
    config = yaml.safe_load(catalog.read_text())
    for source in config["sources"].values():
        if source["type"] == "stac":
            source["signing"] = "planetary-computer"
    catalog.write_text(yaml.safe_dump(config))
    fault_proxy.add("cogs/", "403", require_sig=f"SIGNED{key[:8]}")  # unsigned reads are refused

    log = io.StringIO()
    console = Console(file=log, width=200)
    summary = run_download(request, console)
    assert summary.failed == [] and summary.fetched
    assert not [e for e in fault_proxy.log() if e["status"] == 403], "every read was signed"
    run_tiles(TilesRequest(recipe="demo", data=data, scheduler=cluster), console)
    captured = capfd.readouterr()
    (data / "console.log").write_text(log.getvalue() + captured.out + captured.err)

    needles = [key.encode(), aws_key.encode(), aws_secret.encode(), b"SIGNED"]
    assert {p.name for p in data.glob("catalogs/*/*") if p.is_file()} >= {"catalog.json", "plan.parquet", "plan.png"}
    assert (data / "demo.zarr" / "zarr.json").exists() and (data / "demo.tiles.parquet").exists()
    assert _leaks(data, needles) == []


def test_the_local_cluster_listens_on_loopback_only() -> None:
    """The stage's own cluster (no --scheduler): its dashboard, scheduler and workers accept no connection
    from the network. Before, the dashboard was bound to every interface (``dashboard_address=":0"``)."""
    from urllib.parse import urlparse

    import psutil

    from msc_france.tiles.run import dask_client

    with dask_client(None, 1) as client:
        link = urlparse(client.dashboard_link)
        assert link.hostname == "127.0.0.1" and link.port
        ports = {link.port, urlparse(client.scheduler.address).port}
        ports |= {urlparse(w).port for w in client.scheduler_info()["workers"]}
        me = psutil.Process()
        listening = [c for p in (me, *me.children(recursive=True)) for c in p.net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port in ports]
        # the premise: the dashboard's, the scheduler's and the worker's listening sockets were all found
        assert {c.laddr.port for c in listening} == ports, (ports, listening)
        assert {c.laddr.ip for c in listening} == {"127.0.0.1"}, listening
