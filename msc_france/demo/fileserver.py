"""A static file server with HTTP Range support (Starlette on uvicorn) for the demo world's COGs.

Run as ``python -m msc_france.demo.fileserver ROOT PORT``.
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles


def create_app(root: str) -> Starlette:
    """Serve the files under ``root``; Starlette answers Range requests with 206 Partial Content."""
    return Starlette(routes=[Mount("/", StaticFiles(directory=root))])


if __name__ == "__main__":
    uvicorn.run(create_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
