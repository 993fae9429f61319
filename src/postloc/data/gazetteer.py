"""A gazetteer: POIs known by name and centre, whether or not any training post was made there.

A run knows only the POIs it was trained on. A user often knows more places than they have posts
for: the Instaloader locations they did not download, a ``poi,lat,lon,name`` table, an
OpenStreetMap export of named nodes. Such a table lets prediction name places the model never saw
(:mod:`postloc.inference.names`). Three sources, one record type (:class:`Place`):

* a CSV ``poi,lat,lon,name`` (the ``--pois`` table of ``prepare``, with names; other columns ignored);
* a GeoJSON ``FeatureCollection`` (what overpass turbo exports): every ``Point`` feature with a
  ``properties.name`` is a place; its id is ``properties["@id"]`` (``node/123``), else the
  feature's ``id``, else ``properties.id``, else a slug of the name. Features that are not points
  (ways, areas) or have no name are skipped and counted, not guessed at;
* the POI table of a run (``data.json``), through :func:`places_from_records`.

Every file is the user's and may be anything: it must be a regular file (no device or FIFO), is read
only up to :data:`GAZETTEER_MAX_BYTES`, and a bad row stops the load with the file, the row and what
is wrong with it.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postloc.errors import BadInputError
from postloc.io.escape import csv_unguard
from postloc.io.inputs import read_small_text
from postloc.text.names import name_tokens

#: a name table is a short line per place: 64 MiB holds a million of them (as ``prepare --pois``)
GAZETTEER_MAX_BYTES = 64 * 2**20
#: longest POI id and name kept (an OSM name is far shorter; longer is not a name)
MAX_ID_CHARS = 200
MAX_NAME_CHARS = 300


@dataclass(frozen=True)
class Place:
    """One named POI with its centre."""

    poi: str
    name: str
    lat: float | None
    lon: float | None


@dataclass
class Gazetteer:
    """Named places in file order, with how many entries of the source were skipped and why."""

    places: list[Place]
    source: str = ""
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.places)


def read_gazetteer(path: str | Path) -> Gazetteer:
    """The named places of a CSV or GeoJSON file (GeoJSON by its ``.geojson``/``.json`` suffix or a leading ``{``)."""
    path = Path(path)
    text = read_small_text(path, GAZETTEER_MAX_BYTES)
    if path.suffix.lower() in (".geojson", ".json") or text.lstrip().startswith("{"):
        return _read_geojson(path, text)
    return _read_csv(path, text)


def places_from_records(records: Iterable[Mapping[str, Any]], source: str = "run") -> Gazetteer:
    """A gazetteer of a run's POI table (``{poi, name, lat, lon}`` dicts); POIs without a real name are left out.

    Names derived from hashtags (``#zwinger #semperoper``, see :func:`postloc.data.pois.name_clusters`)
    are the model's own evidence, not a place name, so they are skipped too.
    """
    places, skipped = [], 0
    for record in records:
        name = str(record.get("name") or "").strip()
        if not name or name.startswith("#") or not name_tokens(name):
            skipped += 1
            continue
        lat, lon = record.get("lat"), record.get("lon")
        places.append(
            Place(str(record["poi"]), name, None if lat is None else float(lat), None if lon is None else float(lon))
        )
    return Gazetteer(places, source, {"no name": skipped} if skipped else {})


def _read_csv(path: Path, text: str) -> Gazetteer:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise BadInputError(path, None, None, "is empty; a name table needs a header poi,lat,lon,name") from None
    except csv.Error as error:
        raise BadInputError(path, 1, None, f"is not a CSV table ({error})") from None
    missing = [c for c in ("poi", "lat", "lon", "name") if c not in header]
    if missing:
        raise BadInputError(path, 1, None, f"a name table needs the columns poi,lat,lon,name; missing {missing}")
    column = {name: header.index(name) for name in ("poi", "lat", "lon", "name")}
    places: list[Place] = []
    seen: set[str] = set()
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                raise BadInputError(path, line, None, f"has {len(row)} fields; the header has {len(header)}")
            # a leading ' before = + - @ is a spreadsheet's formula guard (postloc writes its tables so): not data
            poi = _text(path, line, "poi", csv_unguard(row[column["poi"]]), MAX_ID_CHARS)
            name = _text(path, line, "name", csv_unguard(row[column["name"]]), MAX_NAME_CHARS)
            lat = _number(path, line, "lat", row[column["lat"]], 90)
            lon = _number(path, line, "lon", row[column["lon"]], 180)
            if poi in seen:
                raise BadInputError(path, line, "poi", f"{poi!r} appears twice")
            seen.add(poi)
            places.append(Place(poi, name, lat, lon))
    except csv.Error as error:
        raise BadInputError(path, reader.line_num, None, f"is not valid CSV ({error})") from None
    return Gazetteer(places, str(path))


def _read_geojson(path: Path, text: str) -> Gazetteer:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadInputError(path, error.lineno, None, f"is not valid JSON ({error.msg})") from None
    except (ValueError, RecursionError):
        raise BadInputError(path, None, None, "is not valid JSON (nested too deeply or a number too long)") from None
    if (
        not isinstance(data, dict)
        or data.get("type") != "FeatureCollection"
        or not isinstance(data.get("features"), list)
    ):
        raise BadInputError(
            path, None, None, 'must be a GeoJSON FeatureCollection ({"type": "FeatureCollection", ...})'
        )
    places: list[Place] = []
    seen: set[str] = set()
    skipped = {"not a point": 0, "no name": 0}
    for index, feature in enumerate(data["features"]):
        where = f"features[{index}]"
        if not isinstance(feature, dict):
            raise BadInputError(path, None, where, "must be a GeoJSON Feature object")
        properties = feature.get("properties") or {}
        geometry = feature.get("geometry") or {}
        if not isinstance(properties, dict) or not isinstance(geometry, dict):
            raise BadInputError(path, None, where, "has properties or geometry that are not objects")
        name = properties.get("name")
        if not isinstance(name, str) or not name_tokens(name):
            skipped["no name"] += 1
            continue
        if geometry.get("type") != "Point":
            skipped["not a point"] += 1
            continue
        coordinates = geometry.get("coordinates")
        if not isinstance(coordinates, list) or len(coordinates) < 2:
            raise BadInputError(path, None, where, "has a Point without [lon, lat] coordinates")
        lon = _number(path, None, f"{where}.geometry.coordinates[0]", coordinates[0], 180)
        lat = _number(path, None, f"{where}.geometry.coordinates[1]", coordinates[1], 90)
        name = _text(path, None, f"{where}.properties.name", name, MAX_NAME_CHARS)
        given = next(
            (v for v in (properties.get("@id"), feature.get("id"), properties.get("id")) if isinstance(v, (str, int))),
            None,
        )
        if given is not None and not isinstance(given, bool):
            poi = _text(path, None, f"{where} id", str(given), MAX_ID_CHARS)
            if poi in seen:
                raise BadInputError(path, None, where, f"id {poi!r} appears twice")
        else:
            poi = _unique("-".join(name_tokens(name))[:MAX_ID_CHARS] or f"place-{index}", seen)
        seen.add(poi)
        places.append(Place(poi, name, lat, lon))
    return Gazetteer(places, str(path), {k: v for k, v in skipped.items() if v})


def _unique(slug: str, seen: set[str]) -> str:
    candidate, k = slug, 2
    while candidate in seen:
        candidate, k = f"{slug}-{k}", k + 1
    return candidate


def _text(path: Path, line: int | None, key: str, value: Any, limit: int) -> str:
    text = str(value).strip()
    if not text:
        raise BadInputError(path, line, key, "must not be empty")
    if len(text) > limit:
        raise BadInputError(path, line, key, f"is {len(text)} characters long; the limit is {limit}")
    return text


def _number(path: Path, line: int | None, key: str, value: Any, bound: float) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not -bound <= number <= bound:  # NaN fails too
        raise BadInputError(path, line, key, f"must be a number in [-{bound:g}, {bound:g}], got {str(value)[:40]!r}")
    return number
