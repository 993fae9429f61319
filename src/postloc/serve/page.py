"""The web page: ``GET /`` and its static files, ``GET /v1/config`` (what the page needs to know), and the
headers every answer carries (the page's Content-Security-Policy: scripts and styles from the server only,
map tiles from the configured tile server only)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from postloc.serve.schemas import PageConfig

STATIC = Path(__file__).parent / "static"
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: blob: {tiles}; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def add_security_headers(app: FastAPI, tile_url: str | None) -> None:
    """``nosniff`` and ``no-referrer`` on every answer; the page's CSP on the page and its static files."""

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.url.path == "/" or request.url.path.startswith("/static/"):
            tiles = _origin(tile_url)
            response.headers.setdefault("Content-Security-Policy", PAGE_CSP.format(tiles=tiles).replace("  ", " "))
        return response


def add_config(app: FastAPI, body: dict[str, Any]) -> None:
    """``GET /v1/config``: ``body`` (a :class:`PageConfig`), fixed while serving."""

    @app.get("/v1/config", response_model=PageConfig)
    async def config():
        """What the web page needs to know: tile layer (off by default), limits, and what the model reads."""
        return body


def add_page(app: FastAPI) -> None:
    """``GET /`` (the page) and ``/static/`` (its script, styles and images)."""

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def _origin(url: str | None) -> str:
    if not url:
        return ""
    match = re.match(r"^(https?://[^/]+)", url.replace("{s}.", ""))
    return match.group(1) if match else ""
