"""The tile store's on-disk contract (docs/store.md): layout and group order, typed records, the
tile index, completion records and lock paths, and the one way to read a store (:func:`open_store`)
and to write a file (:func:`atomic_write`). The tiles stage writes it; everything else reads it here.

    store = open_store("data/demo.zarr")
    store.groups                          # ["s2", "l8", "vhr", "labels"]
    store.read_tile("s2", col, row)       # (band, px, px) DN, one chunk
    store.index()                         # the tile index, a GeoDataFrame
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below, imported on first use: `store.atomic` is light, the reader is not
    from msc_france.store.atomic import atomic_path, atomic_write
    from msc_france.store.index import SPLITS, read_index
    from msc_france.store.layout import GROUP_ORDER, IMAGING, LABELS, STORE_VERSION, Layer, index_path, layers
    from msc_france.store.model_card import ModelCard, SensorCard, read_card
    from msc_france.store.reader import StoreMeta, TileStore, open_store, stores_in
    from msc_france.store.records import BandStatistics, Normalisation, ShardRecord, TileRecord

_HOMES = {
    "atomic": ("atomic_path", "atomic_write"),
    "index": ("SPLITS", "read_index"),
    "layout": ("GROUP_ORDER", "IMAGING", "LABELS", "STORE_VERSION", "Layer", "index_path", "layers"),
    "model_card": ("ModelCard", "SensorCard", "read_card"),
    "reader": ("StoreMeta", "TileStore", "open_store", "stores_in"),
    "records": ("BandStatistics", "Normalisation", "ShardRecord", "TileRecord"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = [  # written out for type checkers and linters; tests/test_store.py checks it against _HOMES
    "GROUP_ORDER", "IMAGING", "LABELS", "SPLITS", "STORE_VERSION", "BandStatistics", "Layer", "ModelCard",
    "Normalisation", "SensorCard", "ShardRecord", "StoreMeta", "TileRecord", "TileStore", "atomic_path",
    "atomic_write", "index_path", "layers", "open_store", "read_card", "read_index", "stores_in",
]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - whichever object the submodule defines
    """``msc_france.store.NAME`` from its submodule, imported on first use (PEP 562)."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
