"""Names that become one path component (item ids from a STAC API, run and recipe names): checked so
that none of them can point outside the folder it is joined to."""

from __future__ import annotations

import re

from msc_france.errors import UserError

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit"


def is_safe_name(text: object) -> bool:
    """True when ``text`` is a string usable as one file or folder name (no separator, not ``..``)."""
    return isinstance(text, str) and SAFE_NAME.fullmatch(text) is not None


def safe_name(text: str, what: str) -> str:
    """``text`` itself when :func:`is_safe_name`; else a one-line :class:`UserError` naming ``what``."""
    if not is_safe_name(text):
        raise UserError(f"{what} {text!r} is not a safe name: use {RULE} (no '/', no '..')")
    return text
