"""Publishing a built tile store: a STAC Collection with a stac-geoparquet mirror of the tiles, a dataset
card, a Croissant description and a versioned changelog, beside the store (``docs/publish.md``)."""

from msc_france.publish.run import PublishRequest, PublishSummary, publish

__all__ = ["PublishRequest", "PublishSummary", "publish"]
