"""``GET /v1/basemap``: the streets and shores given with ``postloc serve --basemap FILE``, for the page's map.

The file is read once when the app is built (:func:`postloc.data.basemap.read_basemap`: bounded,
checked; a bad file stops the server before it listens, in one line). The answer is a GeoJSON
FeatureCollection of geometry only, thinned to :data:`MAX_SERVED_POINTS` positions: the features'
properties were dropped on reading, so no text from the file reaches the page. Nothing is fetched
from the network; without the flag the route answers that there is no base map and the page draws
the run's density alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI, Response

from postloc.data.basemap import read_basemap, simplify
from postloc.serve.errors import ApiError

#: positions in the served GeoJSON (some 20 bytes each: about 2 MB, drawn by Leaflet in a moment)
MAX_SERVED_POINTS = 100_000


def basemap_body(path: Path | None) -> str | None:
    """The answer of ``GET /v1/basemap`` for the file at ``path`` (None without one); a bad file raises
    :class:`postloc.errors.BadInputError` naming it. Called before the model loads, to fail fast."""
    if path is None:
        return None
    shown = simplify(read_basemap(path), MAX_SERVED_POINTS)
    return json.dumps(shown.to_geojson(), separators=(",", ":"))


def add_basemap(app: FastAPI, body: str | None) -> None:
    """Register ``GET /v1/basemap`` answering ``body`` (built once: the file does not change while served)."""

    @app.get("/v1/basemap", include_in_schema=False)
    async def basemap():
        """The base map's lines and areas (GeoJSON, geometry only), or 404 without ``--basemap``."""
        if body is None:
            raise ApiError(404, "no base map: start the server with --basemap FILE")
        return Response(body, media_type="application/geo+json", headers={"Cache-Control": "max-age=3600"})
