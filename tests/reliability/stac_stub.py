"""A minimal STAC API (landing page, conformance, item search with paging) serving items given by a
test, in a thread on loopback: for answers a real server would not give (empty pages, malformed
items, items without ``proj:`` fields or with far-away footprints).

``pages(collection)`` returns the pages of a search of one collection (a list of lists of items);
every page but the last links to the next one.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Pages = Callable[[str], list[list[Any]]]
CONFORMANCE = ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"]


def world_items(world: Path, files_url: str, collection: str) -> list[dict[str, Any]]:
    """The demo world's items of ``collection`` with hrefs on its file server (as it serves them)."""
    items = []
    for path in sorted((world / "stac" / "items" / collection).glob("*.json")):
        item = json.loads(path.read_text())
        for asset in item["assets"].values():
            asset["href"] = f"{files_url}/{asset['href']}"
        items.append(item)
    return items


class _Handler(BaseHTTPRequestHandler):
    pages: Pages
    base: str

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _search(self, collections: list[str], page: int) -> None:
        pages = [p for c in collections for p in self.pages(c)] or [[]]
        links = []
        if page + 1 < len(pages):
            query = urllib.parse.urlencode({"collections": ",".join(collections), "page": page + 1})
            links.append({"rel": "next", "href": f"{self.base}/search?{query}", "type": "application/geo+json",
                          "method": "GET"})
        self._send({"type": "FeatureCollection", "features": pages[page], "links": links})

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path in ("", "/"):
            self._send({"type": "Catalog", "id": "stub", "stac_version": "1.0.0", "description": "test stub",
                        "conformsTo": CONFORMANCE, "links": [
                            {"rel": "self", "href": self.base, "type": "application/json"},
                            {"rel": "root", "href": self.base, "type": "application/json"},
                            {"rel": "search", "href": f"{self.base}/search", "type": "application/geo+json",
                             "method": "GET"},
                            {"rel": "search", "href": f"{self.base}/search", "type": "application/geo+json",
                             "method": "POST"}]})
        elif url.path == "/conformance":
            self._send({"conformsTo": CONFORMANCE})
        elif url.path == "/search":
            collections = ",".join(query.get("collections", [""])).split(",")
            self._search([c for c in collections if c], int(query.get("page", ["0"])[0]))
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self._search(list(body.get("collections", [])), 0)


@contextlib.contextmanager
def stac_stub(pages: Pages) -> Iterator[str]:
    """Serve ``pages`` on a free loopback port; yields the API's URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    server.RequestHandlerClass = type("Handler", (_Handler,), {"pages": staticmethod(pages), "base": base})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base
    finally:
        server.shutdown()
        server.server_close()
