"""Bad input is one line (``error: ...``, exit status 2, no traceback), never silently accepted: recipe
grids, recipe paths, repeated YAML keys, ``grid --bbox``, ``tiles --store``, a damaged store's
``zarr.json``, a failing URL signer (docs/reliability.md, Input)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from odc.geo.geom import BoundingBox

from msc_france.config import load_catalog, load_recipe
from msc_france.download.fetch import AssetJob, fetch_asset
from msc_france.download.http import FetchError, HttpOpener, RetryPolicy, Transfer, http_client
from msc_france.errors import UserError
from msc_france.pairs import open_pairs
from msc_france.store.reader import open_store
from msc_france.tiles.create import create_or_open

RECIPE = "name: x\ngrid: {{footprint: {footprint}, gsd: {{s2: {gsd}}}}}\nsensors: {{s2: {{bands: [B04]}}}}\n"


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "msc_france", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single ``error: ...`` line of a command that failed with exit status 2."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# --- recipe grids and paths ----------------------------------------------------------------------
@pytest.mark.parametrize(("footprint", "gsd", "expected"), [
    (".inf", "10", "footprint must be a positive number of metres, got inf"),
    ("4800000", "10", "grid footprint 4800 km is larger than the France grid's extent; the most is 1200 km"),
    ("1920", "-10", "the gsd of s2 must be a positive number of metres, got -10"),
    ("1920", ".inf", "the gsd of s2 must be a positive number of metres, got inf"),
], ids=["inf-footprint", "4800-km-footprint", "negative-gsd", "inf-gsd"])
def test_a_bad_grid_is_one_line(tmp_path: Path, footprint: str, gsd: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(RECIPE.format(footprint=footprint, gsd=gsd))
    line = one_line_error(_cli("grid", "--recipe", str(path)))
    assert str(path) in line and expected in line, line
    assert "whole number" not in line


@pytest.mark.parametrize("name", ["folder.yaml", "folder"])
def test_a_recipe_path_that_is_a_folder_is_one_line(tmp_path: Path, name: str) -> None:
    (tmp_path / name).mkdir()
    line = one_line_error(_cli("grid", "--recipe", str(tmp_path / name)))
    assert "is a folder" in line and str(tmp_path / name) in line, line


# --- repeated YAML keys --------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "key", "line_no"), [
    ("name: x\nname: y\ngrid: {footprint: 1920, gsd: {s2: 10}}\nsensors: {s2: {bands: [B04]}}\n", "name", 2),
    ("name: x\ngrid: {footprint: 1920, gsd: {s2: 10, s2: 20}}\nsensors: {s2: {bands: [B04]}}\n", "s2", 2),
    ("name: x\ngrid:\n  footprint: 1920\n  gsd: {s2: 10}\n  footprint: 3840\nsensors: {s2: {bands: [B04]}}\n",
     "footprint", 5),
], ids=["top-level", "flow-mapping", "nested"])
def test_a_key_given_twice_in_a_recipe_is_one_line(tmp_path: Path, text: str, key: str, line_no: int) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_recipe(str(path))
    message = str(info.value)
    assert message == f"{path}: line {line_no}: key {key!r} is given twice; keep only one"
    line = one_line_error(_cli("grid", "--recipe", str(path)))
    assert line == f"error: {message}"


def test_a_key_given_twice_in_a_catalog_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text("name: c\nsources:\n  s2: {type: stac, url: 'https://a', collection: c}\n"
                    "  s2: {type: stac, url: 'https://b', collection: c}\n")
    with pytest.raises(UserError, match=rf"^{path}: line 4: key 's2' is given twice; keep only one$"):
        load_catalog(str(path))


def test_the_shipped_files_have_no_repeated_keys() -> None:
    assert load_recipe("msc-france").name == "msc-france" and load_catalog("demo").world is not None


# --- grid --bbox ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("bbox", "expected"), [
    ("nan,43.5,1.31,43.51", "every value must be a finite number"),
    ("1.30,43.5,inf,43.51", "every value must be a finite number"),
    ("1.31,43.50,1.30,43.51", "with minlon < maxlon and minlat < maxlat"),
    ("1.30,43.51,1.31,43.50", "with minlon < maxlon and minlat < maxlat"),
    ("-180,-90,180,90", "is not within the France grid's extent (lon"),
    ("100,10,101,11", "is not within the France grid's extent (lon"),
], ids=["nan", "inf", "west-east-swapped", "south-north-swapped", "whole-world", "far-away"])
def test_a_bad_bbox_is_one_line(bbox: str, expected: str) -> None:
    result = _cli("grid", "--recipe", "demo", f"--bbox={bbox}")
    line = one_line_error(result)
    assert line.startswith("error: --bbox ") and expected in line, line
    assert result.stdout == "", "nothing is described before the error"


# --- tiles --store -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["file", "proc", "root"])
def test_a_store_that_cannot_be_a_folder_is_one_line(tmp_path: Path, kind: str) -> None:
    store = {"file": str(tmp_path / "file.zarr"), "proc": "/proc/self/x.zarr", "root": "/"}[kind]
    if kind == "file":
        Path(store).write_text("not a store")
    line = one_line_error(_cli("tiles", "--store", store, "--data", str(tmp_path / "data")))
    assert f"store {store}" in line or repr(store) in line, line
    expected = {"file": "is a file, not a store folder", "proc": "is under /proc, a system folder",
                "root": "cannot place files beside store"}[kind]
    assert expected in line, line
    assert not (tmp_path / "data").exists() and not Path("/.tiles.lock").exists()


# --- a damaged store -----------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "not-json", "binary", "a-list"])
@pytest.mark.parametrize("which", ["root", "group"])
def test_a_damaged_zarr_json_is_one_line(tmp_path: Path, damage: str, which: str) -> None:
    store = tmp_path / "s.zarr"
    create_or_open(str(store), load_recipe("demo"))
    target = store / "zarr.json" if which == "root" else store / "s2" / "zarr.json"
    text = target.read_text()
    target.write_bytes({"truncated": text[: len(text) // 2].encode(), "not-json": b"<html>503</html>",
                        "binary": b"\xff\xfe\x00garbage", "a-list": b"[1, 2]"}[damage])
    for opener in (open_store, open_pairs):
        with pytest.raises(UserError) as info:
            opener(str(store))
        message = str(info.value)
        assert "\n" not in message and f"the tile store at {store} is damaged" in message, message
        assert "delete the store and build it again" in message


def test_a_damaged_store_is_one_line_at_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = data / "demo.zarr"
    create_or_open(str(store), load_recipe("demo"))
    (store / "zarr.json").write_text('{"zarr_format": 3, "node_type": "gro')
    line = one_line_error(_cli("publish", "--data", str(data), "--store", str(store), "--out", str(tmp_path / "p")))
    assert "is damaged" in line, line


# --- a failing URL signer ------------------------------------------------------------------------
def test_a_failing_signer_fails_its_item_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The signer runs inside GDAL's read callback: its exception must become the asset's failure,
    not an 'Exception ignored' message and a vague GDAL error."""
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)

    def sign(href: str) -> str:
        raise RuntimeError("token service said 500\nretry later")

    job = AssetJob("s2", "item", "B04", "http://127.0.0.1:9/cogs/B04.tif", (1,), ("B04",), 10.0, "average",
                   tmp_path / "B04.tif")
    opener = HttpOpener(http_client(), sign, RetryPolicy(attempts=1, sleep=lambda s: None), Transfer())
    with pytest.raises(FetchError) as info:
        fetch_asset(job, BoundingBox(500_000, 6_200_000, 500_480, 6_200_480, "EPSG:2154"), opener)
    message = str(info.value)
    assert message == ("http://127.0.0.1:9/cogs/B04.tif: signing failed "
                       "(RuntimeError: token service said 500 retry later)"), message
    assert unraisable == [] and not job.path.exists()


def test_signing_waits_for_the_first_read() -> None:
    """Opening a file signs nothing: a signer failure then happens where it is caught (the read)."""
    seen: list[str] = []

    def sign(href: str) -> str:
        seen.append(href)
        return href + "?sig=x"

    opener = HttpOpener(http_client(), sign, RetryPolicy(attempts=1, sleep=lambda s: None), Transfer())
    handle = opener("http://127.0.0.1:9/a.tif?old=1")
    assert seen == [], "signed on the first read, inside the callback's error handling"
    assert handle.read(10) == b"" and handle.error is not None and seen == ["http://127.0.0.1:9/a.tif"]
