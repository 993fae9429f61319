"""A base map a user supplies (``--basemap FILE``): streets and shores as GeoJSON lines and areas.

Why a file and not tiles: the report and the page draw the city offline, and a page that fetches
nothing is safe to mail around. OpenStreetMap extracts exported by osmium, ogr2ogr or overpass are
GeoJSON FeatureCollections of LineString/MultiLineString/Polygon/MultiPolygon geometries; those are
kept, points are ignored, and **feature properties are dropped on reading** (names, tags: the
user's data, never rendered, so markup in them reaches no page).

The reader is bounded: a regular file of at most :data:`MAX_BASEMAP_BYTES`, at most
:data:`MAX_BASEMAP_POINTS` positions, each a finite (lon, lat) in range; anything else is one line
naming the file. ``.osm.pbf`` is refused with the osmium command that converts it: its reader
(pyrosm) pins a protobuf that postloc's other dependencies exclude.

What is drawn is bounded separately: :func:`clip` keeps what touches a view, :func:`simplify` thins
the positions to a budget (the report's SVG, the served GeoJSON).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from postloc.errors import BadInputError
from postloc.io.inputs import read_small_text

MAX_BASEMAP_BYTES = 64 * 2**20
#: positions in one file: a city's streets and shores hold some 10^5 to 10^6
MAX_BASEMAP_POINTS = 2_000_000
CONVERT_HINT = "convert it to GeoJSON with osmium: osmium export extract.osm.pbf -o streets.geojson"

Ring = np.ndarray  # (n, 2) float: lon, lat


@dataclass(frozen=True)
class Basemap:
    """Geometry only: ``lines`` (each an (n, 2) lon/lat array) and ``areas`` (each a polygon's rings, outer first)."""

    lines: tuple[Ring, ...]
    areas: tuple[tuple[Ring, ...], ...]

    @property
    def points(self) -> int:
        return sum(len(x) for x in self.lines) + sum(len(r) for rings in self.areas for r in rings)

    def to_geojson(self, digits: int = 6) -> dict[str, Any]:
        """A FeatureCollection of the geometry with empty properties (what ``GET /v1/basemap`` answers)."""

        def coords(ring: Ring) -> list[list[float]]:
            return np.round(ring, digits).tolist()

        features = [_feature("LineString", coords(line)) for line in self.lines]
        features += [_feature("Polygon", [coords(r) for r in rings]) for rings in self.areas]
        return {"type": "FeatureCollection", "features": features}


def _feature(kind: str, coordinates: Any) -> dict[str, Any]:
    return {"type": "Feature", "properties": {}, "geometry": {"type": kind, "coordinates": coordinates}}


def read_basemap(path: str | Path, max_points: int = MAX_BASEMAP_POINTS) -> Basemap:
    """Read and check a GeoJSON base map; a bad one raises :class:`BadInputError` naming the file."""
    name = str(path).lower()
    if name.endswith((".pbf", ".osm", ".o5m", ".osm.bz2")):
        raise BadInputError(path, None, None, f"is an OpenStreetMap extract, not GeoJSON; {CONVERT_HINT}")
    text = read_small_text(path, MAX_BASEMAP_BYTES)
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except ValueError as error:
        raise BadInputError(path, None, None, f"is not GeoJSON: {str(error).splitlines()[0]}") from None
    del text
    reader = _Reader(path, max_points)
    reader.top(data)
    if not reader.lines and not reader.areas:
        raise BadInputError(path, None, None, "holds no LineString, MultiLineString, Polygon or MultiPolygon")
    return Basemap(tuple(reader.lines), tuple(reader.areas))


def _no_constant(word: str) -> float:
    raise ValueError(f"{word} is not a coordinate (non-finite)")


GEOMETRIES = ("LineString", "MultiLineString", "Polygon", "MultiPolygon", "Point", "MultiPoint", "GeometryCollection")


class _Reader:
    """Walks the GeoJSON; keeps geometry only, counting positions against the bound as it goes."""

    def __init__(self, path: str | Path, max_points: int) -> None:
        self.path, self.max_points, self.points = path, max_points, 0
        self.lines: list[Ring] = []
        self.areas: list[tuple[Ring, ...]] = []

    def fail(self, problem: str) -> BadInputError:
        return BadInputError(self.path, None, None, problem)

    def top(self, data: Any) -> None:
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "FeatureCollection":
            features = data.get("features")
            if not isinstance(features, list):
                raise self.fail('is a FeatureCollection without a "features" list')
            for i, feature in enumerate(features):
                self.feature(feature, i)
        elif kind == "Feature":
            self.feature(data, 0)
        elif kind in GEOMETRIES:
            self.geometry(data, "the geometry")
        else:
            shown = "a JSON " + type(data).__name__ if kind is None else f'type "{str(kind)[:40]}"'
            raise self.fail(f"is {shown}, not a GeoJSON FeatureCollection of lines and areas")

    def feature(self, feature: Any, i: int) -> None:
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise self.fail(f"feature {i} is not a GeoJSON Feature")
        if feature.get("geometry") is not None:  # a feature without geometry draws nothing
            self.geometry(feature["geometry"], f"feature {i}")

    def geometry(self, geometry: Any, where: str) -> None:
        kind = geometry.get("type") if isinstance(geometry, dict) else None
        if kind == "GeometryCollection":
            for part in geometry.get("geometries") or []:
                self.geometry(part, where)
            return
        if kind not in GEOMETRIES:
            raise self.fail(f"{where}: {str(kind)[:40]!r} is not a GeoJSON geometry type")
        if kind in ("Point", "MultiPoint"):
            return  # nothing to draw as a line or an area
        coordinates = geometry.get("coordinates")
        if not isinstance(coordinates, list):
            raise self.fail(f"{where}: a {kind} without a coordinates list")
        if kind == "LineString":
            self.lines.append(self.positions(coordinates, where, 2))
        elif kind == "MultiLineString":
            self.lines += [self.positions(part, where, 2) for part in self._list(coordinates, where)]
        elif kind == "Polygon":
            self.areas.append(self.polygon(coordinates, where))
        else:
            self.areas += [self.polygon(part, where) for part in self._list(coordinates, where)]

    def _list(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(f"{where}: coordinates nest deeper than its type says")
        return value

    def polygon(self, rings: Any, where: str) -> tuple[Ring, ...]:
        found = tuple(self.positions(ring, where, 4) for ring in self._list(rings, where))
        if not found:
            raise self.fail(f"{where}: a polygon without rings")
        return found

    def positions(self, value: Any, where: str, least: int) -> Ring:
        """An (n, 2) array of finite lon/lat in range; a third number (height) is dropped."""
        if not isinstance(value, list) or len(value) < least:
            raise self.fail(f"{where}: a line or ring needs at least {least} positions")
        self.points += len(value)
        if self.points > self.max_points:
            raise self.fail(
                f"holds more than {self.max_points:,} positions; cut the extract to the posts' area "
                "(osmium extract --bbox) or keep fewer kinds of ways"
            )
        try:
            array = np.asarray(value)
        except ValueError:  # ragged: some positions carry a height, some not
            try:
                array = np.asarray([p[:2] if isinstance(p, list) else p for p in value])
            except ValueError:
                raise self.fail(f"{where}: a position is not a list of numbers [lon, lat]") from None
        if array.ndim != 2 or array.shape[1] < 2 or array.dtype.kind not in "iuf":
            raise self.fail(f"{where}: a position is not a list of numbers [lon, lat]")
        array = array[:, :2].astype(float)
        if not np.isfinite(array).all():
            raise self.fail(f"{where}: a non-finite coordinate")
        lon, lat = array[:, 0], array[:, 1]
        if (np.abs(lon) > 180).any() or (np.abs(lat) > 90).any():
            raise self.fail(f"{where}: a coordinate outside lon [-180, 180], lat [-90, 90] (GeoJSON is lon, lat)")
        return array


def clip(basemap: Basemap, bounds: tuple[float, float, float, float]) -> Basemap:
    """What touches ``bounds`` (south, west, north, east): the segments whose box meets it, areas whose box meets it.

    Lines are cut where they leave the view (a run of kept segments is one line); an area is kept
    whole, for the drawing to clip it (cutting a polygon right needs a geometry library)."""
    lines: list[Ring] = []
    for line in basemap.lines:
        lines += _clip_line(line, bounds)
    areas = tuple(rings for rings in basemap.areas if _meets(rings[0], bounds))
    return Basemap(tuple(lines), areas)


def _meets(ring: Ring, bounds: tuple[float, float, float, float]) -> bool:
    south, west, north, east = bounds
    lon, lat = ring[:, 0], ring[:, 1]
    return bool(lon.min() <= east and lon.max() >= west and lat.min() <= north and lat.max() >= south)


def _clip_line(line: Ring, bounds: tuple[float, float, float, float]) -> list[Ring]:
    south, west, north, east = bounds
    a, b = line[:-1], line[1:]
    keep = (
        (np.minimum(a[:, 0], b[:, 0]) <= east)
        & (np.maximum(a[:, 0], b[:, 0]) >= west)
        & (np.minimum(a[:, 1], b[:, 1]) <= north)
        & (np.maximum(a[:, 1], b[:, 1]) >= south)
    )
    if keep.all():
        return [line]
    out, start = [], None
    for i, kept in enumerate([*keep.tolist(), False]):
        if kept and start is None:
            start = i
        elif not kept and start is not None:
            out.append(line[start : i + 1])  # segments start..i-1 span points start..i
            start = None
    return out


def simplify(basemap: Basemap, max_points: int) -> Basemap:
    """At most ``max_points`` positions: every k-th position of each line and ring (ends kept), then, if
    short lines still exceed the budget, the geometries of largest extent first."""
    total = basemap.points
    if total <= max_points:
        return basemap
    longest = max([len(x) for x in basemap.lines] + [len(r) for rings in basemap.areas for r in rings])
    step = math.ceil(total / max_points)
    while True:  # every k-th position plus each end: a few passes find the k that fits
        items = _thinned(basemap, step)
        if sum(size for _, size, _ in items) <= max_points or step >= longest:
            break
        step = math.ceil(step * 1.25)
    items.sort(key=lambda item: -item[0])
    lines: list[Ring] = []
    areas: list[tuple[Ring, ...]] = []
    used = 0
    for _, size, shape in items:
        if used + size > max_points:
            continue
        used += size
        if isinstance(shape, tuple):
            areas.append(shape)
        else:
            lines.append(shape)
    return Basemap(tuple(lines), tuple(areas))


def _thinned(basemap: Basemap, step: int) -> list[tuple[float, int, Ring | tuple[Ring, ...]]]:
    """(extent, positions, shape) of each line and area, thinned to every ``step``-th position."""
    items: list[tuple[float, int, Ring | tuple[Ring, ...]]] = []
    for line in basemap.lines:
        thin = _thin(line, step, 2)
        items.append((_extent(thin), len(thin), thin))
    for rings in basemap.areas:
        thin_rings = tuple(_thin(r, step, 4) for r in rings)
        items.append((_extent(thin_rings[0]), sum(len(r) for r in thin_rings), thin_rings))
    return items


def _thin(ring: Ring, step: int, least: int) -> Ring:
    if len(ring) <= least or step <= 1:
        return ring
    index = np.unique(np.append(np.arange(0, len(ring), step), len(ring) - 1))
    if len(index) < least:
        return ring[np.linspace(0, len(ring) - 1, least).round().astype(int)]
    return ring[index]


def _extent(ring: Ring) -> float:
    span = ring.max(axis=0) - ring.min(axis=0)
    return float(span[0] + span[1])
