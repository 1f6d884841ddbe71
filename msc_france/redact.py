"""Secrets out of printed URLs: query-string values (SAS tokens, ``sig=``, ``token=``, ``api_key=``)
and the password of a URL's userinfo become ``***``, so a key in a catalog's URL or an asset's href
never reaches the console or a log. Use :func:`redact` on one URL, :func:`redact_text` on a message
that may quote URLs (an exception's text)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
URL = re.compile(r"""[A-Za-z][A-Za-z0-9+.\-]*://[^\s'"<>]+""")
QUERY_VALUE = re.compile(r"=[^&;#]*")
# A query string quoted without its scheme and host (urllib3's "url: /path?token=..."): its values.
QUERY_IN_TEXT = re.compile(r"""([?&][^=\s&?#'"<>()]+)=[^&\s'"<>()#]*""")


def _query(query: str) -> str:
    """Each ``key=value`` of a query string as ``key=***``; a bare value (no key) as ``***``."""
    parts = re.split(r"([&;])", query)
    return "".join(p if p in ("&", ";") or not p else (QUERY_VALUE.sub("=" + MASK, p) if "=" in p else MASK)
                   for p in parts)


def redact(url: str) -> str:
    """``url`` with its query values and its userinfo password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL urllib can split (a bad IPv6 host): mask everything after '?'
        head, sep, _ = url.partition("?")
        return head + (sep + MASK if sep else "")
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}{':' + MASK if colon else ''}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, _query(parts.query) if parts.query else "",
                       _query(parts.fragment) if "=" in parts.fragment else parts.fragment))


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (see :func:`redact`), and the values of any other query
    string it quotes (``/path?token=...``)."""
    def one(match: re.Match[str]) -> str:
        url = match.group(0)
        url_part = url.rstrip(").,;:]}")  # punctuation closing the sentence, not part of the URL
        return redact(url_part) + url[len(url_part):]

    return QUERY_IN_TEXT.sub(lambda m: f"{m.group(1)}={MASK}", URL.sub(one, text))
