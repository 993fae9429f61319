"""``--basemap FILE``: a user's GeoJSON of streets and shores under the report's and the page's map (issue 28, item 5).

Read with a bound (size, positions, finite lon/lat), properties dropped; drawn in report.html's SVG
(clipped, thinned, nothing fetched) and served at ``GET /v1/basemap`` for app.js. A bad file is one
line naming it, exit 2.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from postloc.cli import main
from postloc.data import basemap as basemap_module
from postloc.data.basemap import Basemap, clip, read_basemap, simplify
from postloc.errors import BadInputError
from postloc.quickstart.report import MAX_REPORT_BASEMAP_POINTS, _map_section

APP_JS = Path(__file__).parents[2] / "src" / "postloc" / "serve" / "static" / "app.js"
MARKUP = '<script>alert("x")</script><img src=x onerror=alert(1)>'
LOCAL = "http://localhost"


def _collection(features: list) -> dict:
    return {"type": "FeatureCollection", "features": features}


def _feature(kind: str, coordinates, name: str = MARKUP) -> dict:
    return {"type": "Feature", "properties": {"name": name, "highway": "primary"},
            "geometry": {"type": kind, "coordinates": coordinates}}  # fmt: skip


#: streets and a shore around Dresden's centre (51.05, 13.74), one street far away, a named point
STREETS = _collection(
    [
        _feature("LineString", [[13.70, 51.05], [13.74, 51.05], [13.78, 51.05]]),
        _feature("MultiLineString", [[[13.74, 51.03], [13.74, 51.07]], [[13.72, 51.04], [13.76, 51.06, 110.0]]]),
        _feature("Polygon", [[[13.72, 51.055], [13.76, 51.055], [13.76, 51.065], [13.72, 51.055]]]),
        _feature("LineString", [[2.30, 48.85], [2.35, 48.86]]),  # Paris: outside the view
        _feature("Point", [13.74, 51.05]),
        {"type": "Feature", "properties": {}, "geometry": None},
    ]
)


def _write(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.fixture
def streets(tmp_path) -> Path:
    return _write(tmp_path / "streets.geojson", STREETS)


# -- reading ------------------------------------------------------------------------------------


def test_reader_keeps_lines_and_areas_and_drops_properties(streets):
    found = read_basemap(streets)
    assert len(found.lines) == 4 and len(found.areas) == 1 and found.points == 3 + 2 + 2 + 2 + 4
    assert found.lines[2].shape == (2, 2)  # the height is dropped
    served = json.dumps(found.to_geojson())
    assert "script" not in served and "primary" not in served
    assert all(f["properties"] == {} for f in found.to_geojson()["features"])


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "is not GeoJSON"),
        ('{"type": "LineString", "coordinates": [[13.7, 51.0], [NaN, 51.0]]}', "non-finite"),
        (_collection([_feature("LineString", [[13.7, 51.0], [1e309, 51.0]])]), "non-finite"),
        (_collection([_feature("LineString", [[51.05, 13.7], [51.05, 200.0]])]), "outside lon"),
        (_collection([_feature("LineString", [["13.7", "51.0"], ["13.8", "51.0"]])]), "not a list of numbers"),
        (_collection([_feature("LineString", [[13.7, 51.0]])]), "at least 2 positions"),
        (_collection([_feature("Circle", [[13.7, 51.0]])]), "not a GeoJSON geometry type"),
        (_collection([_feature("Point", [13.7, 51.0])]), "holds no LineString"),
        ([1, 2, 3], "is a JSON list"),
        ({"type": "Topology"}, 'type "Topology"'),
        ({"type": "FeatureCollection"}, '"features" list'),
    ],
)
def test_a_bad_file_is_one_line_naming_it(tmp_path, content, words):
    path = _write(tmp_path / "bad.geojson", content)
    with pytest.raises(BadInputError) as caught:
        read_basemap(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and words in message and "\n" not in message


def test_too_many_points_too_large_a_fifo_and_a_pbf_are_refused(tmp_path, streets, monkeypatch):
    with pytest.raises(BadInputError, match="more than 5 positions"):
        read_basemap(streets, max_points=5)
    fifo = tmp_path / "streets.fifo"
    os.mkfifo(fifo)
    with pytest.raises(BadInputError, match="is a FIFO"):
        read_basemap(fifo)  # refused before a byte is read: this would block forever
    pbf = _write(tmp_path / "extract.osm.pbf", "")
    with pytest.raises(BadInputError, match="osmium export extract.osm.pbf -o streets.geojson"):
        read_basemap(pbf)
    monkeypatch.setattr(basemap_module, "MAX_BASEMAP_BYTES", 100)
    with pytest.raises(BadInputError, match="larger than 100 bytes"):
        read_basemap(streets)


def test_the_default_bounds_are_64_mib_and_2m_positions():
    assert basemap_module.MAX_BASEMAP_BYTES == 64 * 2**20 and basemap_module.MAX_BASEMAP_POINTS == 2_000_000


def test_clip_keeps_what_touches_the_view_and_simplify_keeps_the_budget(streets):
    found = read_basemap(streets)
    view = clip(found, (51.04, 13.72, 51.06, 13.76))
    assert len(view.lines) == 3 and len(view.areas) == 1  # Paris is gone
    assert all(line[:, 0].max() > 13.72 for line in view.lines)
    long = Basemap((np.column_stack([np.linspace(13, 14, 10_000), np.full(10_000, 51.0)]),), ())
    cut = clip(long, (50.9, 13.5, 51.1, 13.6))
    assert len(cut.lines) == 1 and 900 < cut.points < 1100 and cut.lines[0][0, 0] <= 13.5 <= cut.lines[0][-1, 0]
    many = Basemap(
        tuple(np.array([[13.0 + i * 1e-3, 51.0], [13.0 + i * 1e-3, 51.0 + i * 1e-4]]) for i in range(500)), ()
    )
    thin = simplify(many, 300)
    assert thin.points <= 300 and len(thin.lines) == 150
    thinned = simplify(long, 1000)
    assert thinned.points <= 1000 and thinned.lines[0][-1, 0] == 14.0  # the ends stay


# -- report.html --------------------------------------------------------------------------------


def _map_inputs() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    pois = pd.DataFrame({"poi": ["a", "b"], "lat": [51.045, 51.055], "lon": [13.73, 13.75], "posts": [4, 2],
                         "name": ["Altmarkt", "Brühl"], "label": ["Altmarkt", "Brühl"]})  # fmt: skip
    ids = [f"p{i}" for i in range(6)]
    posts = pd.DataFrame({"id": ids, "poi": ["a"] * 4 + ["b"] * 2, "split": ["train", "train", "test"] * 2,
                          "lat": [51.045] * 4 + [51.055] * 2, "lon": [13.73] * 4 + [13.75] * 2,
                          "user": ["u1", "u2", "u1", "u2", "u3", "u4"]})  # fmt: skip
    outcomes = pd.DataFrame({"correct": [True, False]}, index=["p2", "p5"])
    return pois, outcomes, posts


def test_report_draws_the_basemap_in_the_svg_under_the_density_and_fetches_nothing(streets):
    html = "".join(_map_section(*_map_inputs(), read_basemap(streets)))
    svg = re.search(r"<svg id=\"map\".*?</svg>", html, re.S)
    assert svg is not None
    layer = re.search(r'<g id="basemap" clip-path="url\(#basemap-clip\)" data-points="(\d+)">(.*?)</g>', svg.group(0))
    assert layer is not None and 0 < int(layer.group(1)) <= MAX_REPORT_BASEMAP_POINTS
    assert layer.group(2).count("<path") == 2 and 'stroke="#b5bcc4"' in layer.group(2)  # lines and areas
    assert svg.group(0).index('id="basemap"') < svg.group(0).index('id="density"')  # under the density
    assert "http://" not in html and "https://" not in html
    assert "script" not in html.lower() and "onerror" not in html and "primary" not in html
    plain = "".join(_map_section(*_map_inputs()))
    assert 'id="basemap"' not in plain and "--basemap" not in plain


def test_report_thins_a_large_basemap_to_its_budget():
    dense = np.column_stack([np.linspace(13.72, 13.76, 200_000), np.linspace(51.04, 51.06, 200_000)])
    html = "".join(_map_section(*_map_inputs(), Basemap((dense,), ())))
    points = int(re.search(r'id="basemap"[^>]*data-points="(\d+)"', html).group(1))  # type: ignore[union-attr]
    assert points <= MAX_REPORT_BASEMAP_POINTS and len(html) < 400_000


# -- the served page ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from serve_support import small_run

    return small_run(tmp_path_factory)


def test_served_basemap_answers_the_geometry_only(run, tmp_path):
    from postloc.serve.app import build_app

    path = _write(tmp_path / "streets.geojson", STREETS)
    with TestClient(build_app(run, basemap=path), base_url=LOCAL) as client:
        answer = client.get("/v1/basemap")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/geo+json")
        body = answer.json()
        assert body["type"] == "FeatureCollection" and len(body["features"]) == 5
        assert {f["geometry"]["type"] for f in body["features"]} == {"LineString", "Polygon"}
        assert "script" not in answer.text and "primary" not in answer.text
        assert "alert" not in client.get("/").text
    with TestClient(build_app(run), base_url=LOCAL) as client:
        assert client.get("/v1/basemap").status_code == 404


def test_app_js_draws_the_basemap_under_the_density_without_its_properties():
    js = APP_JS.read_text()
    assert 'fetch("/v1/basemap")' in js and 'L.geoJSON(g, { pane: "basemap"' in js
    basemap_z = int(re.search(r'createPane\("basemap"\)\.style\.zIndex = (\d+)', js).group(1))  # type: ignore[union-attr]
    density_z = int(re.search(r'createPane\("density"\)\.style\.zIndex = (\d+)', js).group(1))  # type: ignore[union-attr]
    assert basemap_z < density_z
    assert ".properties" not in js and "onEachFeature" not in js


# -- the command line ---------------------------------------------------------------------------


def test_cli_refuses_a_bad_basemap_in_one_line_with_exit_2(tmp_path, capsys):
    posts = _write(tmp_path / "posts.jsonl", '{"id": "1", "text": "x", "lat": 51.0, "lon": 13.7}\n')
    bad = _write(tmp_path / "bad.geojson", _collection([_feature("LineString", [[13.7, 91.0], [13.8, 51.0]])]))
    fifo = tmp_path / "map.fifo"
    os.mkfifo(fifo)
    for argv in (
        ["quickstart", str(posts), "--out", str(tmp_path / "out"), "--basemap", str(bad), "--no-serve", "--quiet"],
        ["serve", str(tmp_path / "no-run"), "--basemap", str(fifo)],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and ("bad.geojson" in err or "map.fifo" in err), err
    assert not (tmp_path / "out").exists()  # refused before any step


@pytest.mark.slow
def test_quickstart_draws_the_basemap_in_report_html(tmp_path, streets):
    """The flag's path end to end: quickstart reads the file first and hands it to the report."""
    from postloc.quickstart import quickstart
    from quickstart_posts import quickstart_config as _config
    from quickstart_posts import three_poi_posts as _posts
    from quickstart_posts import write_jsonl as _write_jsonl

    out = tmp_path / "out"
    quickstart(_write_jsonl(_posts(), tmp_path / "posts.jsonl"), out, _config(basemap=str(streets)))
    html = (out / "report.html").read_text()
    assert '<g id="basemap"' in html and "<path d=" in html
    assert "alert" not in html and "https://" not in html and "http://" not in html
