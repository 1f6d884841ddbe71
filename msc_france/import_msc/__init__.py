"""``msc-france import-msc``: the released MSC-France dataset of the X-STARS paper into a tile store
(docs/import-msc.md)."""
