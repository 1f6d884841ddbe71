"""Two writers on one ``s3://`` store (a real moto server): the lease object ``STORE.tiles.lock``
admits one, refuses the other in one line, is renewed while its holder lives, taken over once
expired (a conditional write on its ETag) and never deleted by a writer that does not hold it."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from msc_france.config import Recipe, load_recipe
from msc_france.errors import UserError
from msc_france.store.layout import lease_url, lock_path
from msc_france.store.lease import LeaseLostError, LeaseRecord, S3Lease, s3_lease
from msc_france.store.records import ShardRecord
from msc_france.tiles import run as tiles_run
from msc_france.tiles.run import TilesRequest, TilesSummary, run_tiles
from tests.reliability.conftest import settle
from tests.test_tiles import QUIET, downloaded  # noqa: F401 - downloaded is a fixture

BUCKET = "tiles"


@pytest.fixture(scope="module")
def s3() -> Iterator[tuple[dict[str, Any], Any]]:
    """A moto S3 server on loopback with a bucket: the storage options, and a boto3 client."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=url, aws_access_key_id="test", aws_secret_access_key="test",
                          region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    options = {"key": "test", "secret": "test", "client_kwargs": {"endpoint_url": url, "region_name": "us-east-1"}}
    try:
        yield options, client
    finally:
        server.stop()


def _record(client: Any, key: str) -> dict[str, Any] | None:  # noqa: ANN401 - a boto3 client
    try:
        return json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())  # type: ignore[no-any-return]
    except client.exceptions.NoSuchKey:
        return None


def test_lease_sits_beside_the_store_under_the_local_lock_name() -> None:
    assert lease_url("s3://tiles/a/demo.zarr") == "s3://tiles/a/demo.tiles.lock"
    assert lock_path("/data/demo.zarr") == Path("/data/demo.tiles.lock")
    assert lease_url("/data/demo.zarr") is None and lease_url("gs://b/demo.zarr") is None


def test_second_writer_is_refused_in_one_line_then_succeeds_after_release(s3: tuple[dict[str, Any], Any]) -> None:
    options, client = s3
    url = "s3://tiles/two/demo.tiles.lock"
    with s3_lease(url, options, "store s3://tiles/two/demo.zarr", ttl=30) as first:
        held = _record(client, "two/demo.tiles.lock")
        assert held is not None and held["id"] == first.record.id, "the premise: the lease object exists"
        with pytest.raises(UserError) as refused:
            S3Lease(url, options, "store s3://tiles/two/demo.zarr", ttl=30).acquire()
        message = str(refused.value)
        assert "\n" not in message
        assert first.record.holder in message and "expires" in message and "rerun" in message
        assert _record(client, "two/demo.tiles.lock") == held, "the refused writer changed nothing"
    assert _record(client, "two/demo.tiles.lock") is None, "released: deleted"
    with s3_lease(url, options, "store", ttl=30) as second:
        assert _record(client, "two/demo.tiles.lock")["id"] == second.record.id  # type: ignore[index]


def test_an_expired_lease_is_taken_over_and_only_by_one_taker(s3: tuple[dict[str, Any], Any]) -> None:
    options, client = s3
    key, url = "stale/demo.tiles.lock", "s3://tiles/stale/demo.tiles.lock"
    dead = LeaseRecord("crashed-host pid 4242", "deadbeef", time.time() - 5)
    client.put_object(Bucket=BUCKET, Key=key, Body=dead.to_json())
    stale_etag = client.head_object(Bucket=BUCKET, Key=key)["ETag"]
    taker = S3Lease(url, options, "store", ttl=30)
    taker.acquire()
    assert _record(client, key)["id"] == taker.record.id  # type: ignore[index]
    # a second taker that read the same stale lease: its conditional write on that ETag loses
    late = S3Lease(url, options, "store", ttl=30)
    with pytest.raises(LeaseLostError):
        late._put(late._next(), IfMatch=stale_etag)
    assert _record(client, key)["id"] == taker.record.id  # type: ignore[index]
    with pytest.raises(UserError, match="in use by"):
        late.acquire()
    taker.release()
    assert _record(client, key) is None


def test_renewal_extends_the_lease_while_its_holder_lives(s3: tuple[dict[str, Any], Any]) -> None:
    """Renewal rewrites the lease with a later expiry, on its own ETag; the background thread calls it
    (waited for with an event, no timing assumed)."""
    options, client = s3
    key = "renew/demo.tiles.lock"
    with s3_lease(f"s3://tiles/{key}", options, "store", ttl=60) as lease:
        first, etag = _record(client, key)["expires"], lease.etag  # type: ignore[index]
        lease.ttl = 600  # the next renewal must push the expiry well past the first
        lease.renew()
        assert _record(client, key)["expires"] > first + 500 and lease.etag != etag  # type: ignore[index]
        with pytest.raises(UserError, match="in use by"):
            S3Lease(f"s3://tiles/{key}", options, "store", ttl=60).acquire()
    renewed = threading.Event()
    ticking = S3Lease(f"s3://tiles/{key}", options, "store", ttl=0.3)
    ticking.acquire()
    original = ticking.renew

    def renew() -> None:
        original()
        renewed.set()

    ticking.renew = renew  # type: ignore[method-assign]
    ticking.start()
    try:
        assert renewed.wait(timeout=60), "the background thread renews the lease"
    finally:
        ticking.release()
    assert ticking.lost is None and _record(client, key) is None


def test_release_never_deletes_a_lease_held_by_someone_else(s3: tuple[dict[str, Any], Any]) -> None:
    options, client = s3
    key, url = "theirs/demo.tiles.lock", "s3://tiles/theirs/demo.tiles.lock"
    ours = S3Lease(url, options, "store s3://tiles/theirs/demo.zarr", ttl=30)
    ours.acquire()
    other = LeaseRecord("other-host pid 7", "0ther", time.time() + 60)
    client.put_object(Bucket=BUCKET, Key=key, Body=other.to_json())  # e.g. taken over after we stalled
    ours.renew()
    assert ours.lost, "the renewal's conditional write saw the lease change"
    with pytest.raises(UserError, match=r"lost the lease on .*another writer took it over.*rerun to resume"):
        ours.check()
    ours.release()
    assert _record(client, key)["id"] == "0ther", "their lease is still there"


def test_run_tiles_holds_the_lease_of_an_s3_store(s3: tuple[dict[str, Any], Any], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """run_tiles takes the lease (with the request's storage options) around the whole run, and
    refuses a second writer in one line while the first holds it."""
    options, client = s3
    store, key = "s3://tiles/run/demo.zarr", "run/demo.tiles.lock"
    seen: list[dict[str, Any] | None] = []

    def fake_run(request: TilesRequest, recipe: Recipe, folders: list[Path], store: str, console: Console,
                 still_ours: Callable[[], None] | None = None) -> TilesSummary:
        seen.append(_record(client, key))
        with pytest.raises(UserError, match=r"store s3://tiles/run/demo.zarr is in use by .* pid"):
            run_tiles(request, console)
        return TilesSummary(store, "", 0, 0, 0, None, tmp_path)

    monkeypatch.setattr(tiles_run, "catalog_dirs", lambda data, region: [])
    monkeypatch.setattr(tiles_run, "downloaded_recipe", lambda folders, asked: load_recipe("demo"))
    monkeypatch.setattr(tiles_run, "_run_tiles", fake_run)
    request = TilesRequest(recipe="demo", data=tmp_path, store=store, workers=1, storage_options=options)
    run_tiles(request, Console(quiet=True))
    assert seen and seen[0] is not None, "the premise: the lease object existed during the run"
    assert _record(client, key) is None, "released after the run"


def test_a_lease_lost_mid_run_stops_the_run_before_its_next_record(
    s3: tuple[dict[str, Any], Any], downloaded: Path, cluster: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    """Another writer takes the lease over once the run has recorded one shard (the run stalled past
    its expiry): the run writes no record after it, no index, and stops in one line; once that
    writer is done, the rerun resumes."""
    options, client = s3
    store, key = "s3://tiles/lost/demo.zarr", "lost/demo.tiles.lock"
    held: list[S3Lease] = []
    written: list[ShardRecord] = []
    hold, write = tiles_run.s3_lease, tiles_run.write_done

    @contextlib.contextmanager
    def kept_lease(*args: Any, **kwargs: Any) -> Iterator[S3Lease]:
        with hold(*args, **kwargs) as lease:
            held.append(lease)
            yield lease

    def write_then_lose(store: str, record: ShardRecord, storage_options: dict[str, Any] | None = None) -> None:
        write(store, record, storage_options)
        written.append(record)
        if len(written) == 1:
            other = LeaseRecord("other-host pid 7", "0ther", time.time() + 600)
            client.put_object(Bucket=BUCKET, Key=key, Body=other.to_json())  # taken over
            held[0].renew()  # the renewal thread's next tick, run now: it finds the lease taken over

    monkeypatch.setattr(tiles_run, "s3_lease", kept_lease)
    monkeypatch.setattr(tiles_run, "write_done", write_then_lose)
    request = TilesRequest(recipe="demo", data=downloaded, store=store, scheduler=cluster, storage_options=options)
    with pytest.raises(UserError) as stopped:
        run_tiles(request, QUIET)
    assert str(stopped.value) == (f"lost the lease on store {store} (another writer took it over); "
                                  "nothing more was written; rerun to resume")
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix="lost/demo.tiles.done/").get("Contents", [])
    assert len(written) == 1 and len(listed) == 1, "no record after the loss"
    assert "Contents" not in client.list_objects_v2(Bucket=BUCKET, Prefix="lost/demo.tiles.parquet"), "no index"
    assert _record(client, key)["id"] == "0ther", "the other writer's lease is kept"  # type: ignore[index]
    settle(cluster)
    client.delete_object(Bucket=BUCKET, Key=key)  # that writer is done
    monkeypatch.setattr(tiles_run, "write_done", write)
    resumed = run_tiles(request, QUIET)
    assert resumed.skipped == 1 and resumed.written > 1, "the premise: the run had more records to write"
