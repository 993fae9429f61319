"""``GET /v1/density`` and ``GET /v1/density.png``: where the run's training posts were made, for the page's map.

The grid is the run's ``density.json`` (written by training, sealed in its ``config.json``;
:mod:`postloc.training.density`), drawn once when the app is built: the picture is the map's
background, so that the page shows the city's streets and shores without a tile server. A run
without the file (trained before it existed, or on posts without coordinates) says so and the
page draws the POIs alone.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Response
from pydantic import BaseModel, Field

from postloc.errors import PostlocError
from postloc.io.inputs import read_small_json
from postloc.io.run_folder import RunFolder
from postloc.serve.errors import ApiError
from postloc.training.density import check_grid, density_png

MAX_DENSITY_BYTES = 16 * 1024 * 1024


class Density(BaseModel):
    available: bool = Field(description="whether the run keeps where its training posts were made")
    bounds: list[list[float]] | None = Field(None, description="[[south, west], [north, east]] of the picture")
    image: str | None = Field(None, description="the picture's path on this server")
    posts: int = Field(0, description="training posts drawn (cells of fewer users left out)")


def load_density(run: Path) -> tuple[Density, bytes | None]:
    """The run's density as the page's description and PNG bytes; (unavailable, None) without a valid file."""
    path = RunFolder(run).density_path
    try:
        grid = check_grid(read_small_json(path, MAX_DENSITY_BYTES)) if path.is_file() else None
    except (PostlocError, ValueError, OSError):  # an unreadable picture is no picture, not a server that fails
        grid = None
    if grid is None:
        return Density(available=False, bounds=None, image=None, posts=0), None
    south, west, north, east = grid["bounds"]
    info = Density(available=True, bounds=[[south, west], [north, east]], image="/v1/density.png", posts=grid["posts"])
    return info, density_png(grid)


def add_density(app: FastAPI, run: Path) -> None:
    """Register the two routes on ``app``; the PNG is drawn now (the run does not change while served)."""
    info, png = load_density(run)
    body = info.model_dump_json()

    @app.get("/v1/density", response_model=Density)
    async def density():
        """Whether the run keeps its training posts' density, and where the picture goes on the map."""
        return Response(body, media_type="application/json")

    @app.get("/v1/density.png", include_in_schema=False)
    async def density_picture():
        if png is None:
            raise ApiError(404, "this run keeps no density of its training posts")
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})
