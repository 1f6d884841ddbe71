"""The SHA-256 of a file, read in 1 MiB blocks: the download's `file:checksum`, publish's Croissant
checksums and the tiles' shard objects."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO


def sha256_of(handle: IO[bytes]) -> tuple[str, int]:
    """The SHA-256 (hex) and the size of what ``handle`` reads to its end."""
    digest = hashlib.sha256()
    size = 0
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size


def sha256_hex(path: Path) -> str:
    """The SHA-256 of a file's bytes, hex."""
    with path.open("rb") as handle:
        return sha256_of(handle)[0]
