"""The SHA-256 of a file, read in 1 MiB blocks: the download's `file:checksum` and publish's Croissant
checksums."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_hex(path: Path) -> str:
    """The SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
