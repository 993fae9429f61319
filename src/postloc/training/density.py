"""Where the training posts were made, as a small grid of counts and a PNG: the map's background.

Geotagged posts trace a city's streets, squares and shores, so their density is a map of the city
that needs no tile server (nothing is fetched; docs/serve.md, docs/quickstart.md). Training writes
the grid to ``RUN/density.json`` (sealed like ``data.json``), the server draws it once at start for
``GET /v1/density.png``, and quickstart's ``report.html`` embeds the same picture as a data: URI.

A cell is drawn only when posts of at least :data:`MIN_USERS` different users fall in it: the
picture shows where people post, never the spot of a single person.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from postloc.data.schema import is_missing

CELLS = 256  # cells along the longer side of the extent
MAX_CELLS = 1024  # a grid read back from a file is refused past this many cells a side
MIN_USERS = 2
PIXELS = 768  # the picture's longer side is scaled up to about this many pixels
PAD = 0.08  # share of the extent added on each side, so that the edge POIs are not on the border
#: the colours of the faintest and of the densest cell (light to deep blue); fainter cells are also more transparent
FAINT, INK = (120, 150, 225), (20, 40, 130)


def extent(lat: np.ndarray, lon: np.ndarray) -> tuple[float, float, float, float] | None:
    """(south, west, north, east) holding the points, padded; ``None`` without a finite point.

    Outlying posts (the 0.5 % at either end of each axis) do not stretch it: a post a continent
    away would shrink the city to a dot."""
    keep = np.isfinite(lat) & np.isfinite(lon)
    if not keep.any():
        return None
    lat, lon = lat[keep], lon[keep]
    low = 0.5 if len(lat) >= 200 else 0.0
    south, north = np.percentile(lat, [low, 100 - low])
    west, east = np.percentile(lon, [low, 100 - low])
    height = max(north - south, 1e-3)
    width = max(east - west, 1e-3)
    return (
        max(float(south - PAD * height), -90.0),
        max(float(west - PAD * width), -180.0),
        min(float(north + PAD * height), 90.0),
        min(float(east + PAD * width), 180.0),
    )


def density_grid(
    lat: Sequence[float] | np.ndarray,
    lon: Sequence[float] | np.ndarray,
    users: Sequence[Any] | None,
    bounds: tuple[float, float, float, float],
    cells: int | None = None,
) -> dict[str, Any]:
    """Counts of posts per cell over ``bounds`` (south, west, north, east); cells square on the ground.

    Row 0 is the north edge (as an image is drawn). Cells with posts of fewer than
    :data:`MIN_USERS` users are left empty. ``cells`` (along the longer side) defaults to one that
    grows with the posts, up to :data:`CELLS`: a few hundred posts on a fine grid would be lone dots.
    Returned as JSON-ready sparse rows ``[row, col, count]``."""
    south, west, north, east = bounds
    lat_a, lon_a = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    finite = np.isfinite(lat_a) & np.isfinite(lon_a)
    side = cells if cells is not None else int(min(CELLS, max(24, round(3 * math.sqrt(int(finite.sum()))))))
    mid = math.cos(math.radians((south + north) / 2))
    ground_w, ground_h = max(east - west, 1e-9) * max(mid, 0.05), max(north - south, 1e-9)
    cols = max(1, round(side * min(1.0, ground_w / ground_h)))
    rows = max(1, round(side * min(1.0, ground_h / ground_w)))
    inside = finite & (lat_a >= south) & (lat_a <= north)
    inside &= (lon_a >= west) & (lon_a <= east)
    row = np.clip(((north - lat_a[inside]) / (north - south) * rows).astype(int), 0, rows - 1)
    col = np.clip(((lon_a[inside] - west) / (east - west) * cols).astype(int), 0, cols - 1)
    cell = row * cols + col
    counts = np.bincount(cell, minlength=rows * cols)
    if users is not None:
        # a post without a user counts as a person of its own
        who = np.asarray([_person(u, i) for i, u in enumerate(users)])[inside]
        pairs = {(int(c), u) for c, u in zip(cell, who, strict=True)}
        people = np.bincount(np.fromiter((c for c, _ in pairs), dtype=int, count=len(pairs)), minlength=rows * cols)
        counts = np.where(people >= MIN_USERS, counts, 0)
    nonzero = np.flatnonzero(counts)
    return {
        "bounds": [float(south), float(west), float(north), float(east)],
        "rows": int(rows),
        "cols": int(cols),
        "posts": int(counts.sum()),
        "min_users": MIN_USERS if users is not None else 1,
        "cells": [[int(i // cols), int(i % cols), int(counts[i])] for i in nonzero],
    }


def _person(user: Any, index: int) -> str:
    """Who made a post: its user, or the post itself when it names none (a person of its own)."""
    missing = is_missing(user) or str(user) == ""
    return f"post:{index}" if missing else f"user:{user}"


def check_grid(grid: Any) -> dict[str, Any] | None:
    """The grid if it has the shape :func:`density_grid` writes (a file read back), else ``None``."""
    if not isinstance(grid, dict):
        return None
    rows, cols, bounds, cells = grid.get("rows"), grid.get("cols"), grid.get("bounds"), grid.get("cells")
    if not (_count(rows) and _count(cols)):
        return None
    assert isinstance(rows, int) and isinstance(cols, int)
    if not (isinstance(bounds, list) and len(bounds) == 4):
        return None
    if not all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds):
        return None
    south, west, north, east = bounds
    if not (-90 <= south < north <= 90 and -180 <= west < east <= 180):
        return None
    if not isinstance(cells, list) or len(cells) > rows * cols:
        return None
    for c in cells:
        if not (isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and not isinstance(v, bool) for v in c)):
            return None
        if not (0 <= c[0] < rows and 0 <= c[1] < cols and c[2] > 0):
            return None
    return grid


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_CELLS


def density_png(grid: dict[str, Any]) -> bytes:
    """The grid as an RGBA PNG, one pixel per cell: counts spread over their 3 x 3 neighbours (a street of
    posts reads as a line, not as dots), log-scaled; empty cells transparent."""
    from PIL import Image

    rows, cols = grid["rows"], grid["cols"]
    counts = np.zeros((rows, cols), dtype=float)
    for r, c, n in grid["cells"]:
        counts[r, c] = n
    padded = np.pad(counts, 1)
    spread = np.zeros_like(counts)
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            spread += padded[dr : dr + rows, dc : dc + cols]
    counts = spread + counts  # the cell itself counts twice: the line stays sharper than its halo
    level = np.log1p(counts) / max(math.log1p(counts.max()), 1e-9)
    rgba = np.zeros((rows, cols, 4), dtype=np.uint8)
    for channel, ink in enumerate(INK):
        rgba[..., channel] = np.round(FAINT[channel] + (ink - FAINT[channel]) * level).astype(np.uint8)
    rgba[..., 3] = np.where(counts > 0, np.round(130 + 125 * level), 0).astype(np.uint8)
    picture = Image.fromarray(rgba, "RGBA")
    factor = max(1, PIXELS // max(rows, cols))  # drawn smooth here: browsers scale a small picture up in blocks
    if factor > 1:
        picture = picture.resize((cols * factor, rows * factor), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
