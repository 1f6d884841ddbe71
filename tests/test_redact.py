"""Secrets out of printed URLs (msc_france.redact)."""

from __future__ import annotations

import pytest

from msc_france.redact import redact, redact_text


@pytest.mark.parametrize("url, shown", [
    ("https://h.example/c?token=SECRET&limit=1", "https://h.example/c?token=***&limit=***"),
    ("https://user:PASSWORD@h.example:8443/p?sig=SECRET%3D", "https://user:***@h.example:8443/p?sig=***"),
    ("https://acct.blob.core.windows.net/c/b.tif?sv=2021&se=2030&sp=r&sig=SECRET",
     "https://acct.blob.core.windows.net/c/b.tif?sv=***&se=***&sp=***&sig=***"),
    ("https://h.example/p?SECRET", "https://h.example/p?***"),
    ("https://h.example/p#access_token=SECRET", "https://h.example/p#access_token=***"),
    ("https://user@h.example/p", "https://user@h.example/p"),
    ("https://h.example/collections/s2", "https://h.example/collections/s2"),
    ("demo://stac", "demo://stac"),
])
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_redact_text_masks_every_url_in_a_message() -> None:
    message = "HTTP 500 for url 'https://h.example/x?api_key=SECRET' (via http://u:PW@p.example/?sig=S2)"
    assert redact_text(message) == "HTTP 500 for url 'https://h.example/x?api_key=***' (via http://u:***@p.example/?sig=***)"


def test_redact_text_masks_a_query_quoted_without_its_host() -> None:
    message = "Max retries exceeded with url: /search?token=SECRET&limit=100 (Caused by NewConnectionError)"
    assert redact_text(message) == ("Max retries exceeded with url: /search?token=***&limit=*** "
                                    "(Caused by NewConnectionError)")
