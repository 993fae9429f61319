"""The map that shows the city offline, and the report's per-POI, served-run and wide tables (issue 28, items 5-6).

report.html: the training posts' density as a data: PNG under the POIs, a scale bar in km, labels
placed without overlap, a per-POI table, the served run's own test score, the confusion table in a
wrapper that scrolls; nothing fetched. The served page: ``/v1/density`` and ``/v1/density.png``
from the run's sealed ``density.json``; app.js adds Leaflet's scale control and draws the POIs
with their names as it loads.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from postloc.quickstart.report import place_labels
from postloc.training.density import check_grid, density_grid, density_png

APP_JS = Path(__file__).parents[2] / "src" / "postloc" / "serve" / "static" / "app.js"


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


# -- the pieces ---------------------------------------------------------------------------------


def test_labels_are_placed_without_overlap_and_crowded_ones_are_left_out():
    rng = np.random.default_rng(1)
    anchors = [(float(x), float(y), 5.0) for x, y in rng.uniform(100, 220, size=(40, 2))]  # a crowded centre
    sizes = [(80.0, 14.0)] * len(anchors)
    boxes = place_labels(anchors, sizes, (400, 300))
    placed = [b for b in boxes if b is not None]
    assert 4 <= len(placed) < len(anchors)  # the busiest get a label; the rest are left out, not drawn over
    assert not any(_overlap(a, b) for a, b in combinations(placed, 2))
    assert all(min(x, y) >= 0 and x + w <= 400 and y + h <= 300 for x, y, w, h in placed)
    # a lone label goes right of its circle; one at the right edge moves to the left
    assert place_labels([(50, 50, 5)], [(30, 10)], (400, 300)) == [(57, 45, 30, 10)]
    assert place_labels([(390, 50, 5)], [(30, 10)], (400, 300)) == [(353, 45, 30, 10)]


def test_density_leaves_out_a_cell_of_one_person_and_draws_a_png():
    lat = np.array([51.0, 51.0, 51.0, 51.05, 51.05])
    lon = np.array([13.7, 13.7, 13.7, 13.75, 13.75])
    users = ["a", "a", "a", "b", "c"]  # one person's spot (3 posts), and a spot of two people
    grid = density_grid(lat, lon, users, (50.99, 13.69, 51.06, 13.76), cells=32)
    assert grid["posts"] == 2 and len(grid["cells"]) == 1 and check_grid(json.loads(json.dumps(grid))) == grid
    png = density_png(grid)
    assert png.startswith(b"\x89PNG")
    assert check_grid({**grid, "cells": [[999, 0, 1]]}) is None and check_grid({**grid, "rows": 10**6}) is None


# -- report.html ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, str]:
    """One quick quickstart on posts spread along three streets."""
    from postloc.quickstart import quickstart
    from quickstart_posts import quickstart_config as _config
    from quickstart_posts import three_poi_posts as _posts
    from quickstart_posts import write_jsonl as _write_jsonl

    root = tmp_path_factory.mktemp("map")
    rng = np.random.default_rng(0)
    posts = _posts()
    for post in posts:
        t = rng.random() - 0.5
        post.lat, post.lon = post.lat + 0.004 * t, post.lon + 0.01 * t + rng.normal(0, 0.0003)
    out = root / "out"
    quickstart(_write_jsonl(posts, root / "posts.jsonl"), out, _config())
    return out, (out / "report.html").read_text()


def test_report_draws_the_density_a_scale_bar_and_labels_apart(report):
    from PIL import Image

    _, page = report
    found = re.search(r'<image id="density"[^>]* href="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert found, "no density picture"
    picture = Image.open(io.BytesIO(base64.b64decode(found.group(1))))
    assert picture.format == "PNG" and picture.mode == "RGBA"
    assert np.asarray(picture)[..., 3].max() > 0  # something is drawn
    bar = re.search(r'<g id="scale-bar" data-km="([0-9.]+)" data-px="([0-9.]+)"', page)
    assert bar and float(bar.group(1)) > 0 and 20 < float(bar.group(2)) < 400
    assert re.search(r">[0-9.]+ km</text>", page)
    boxes = [tuple(map(float, b.split())) for b in re.findall(r'class="label"[^>]* data-box="([^"]+)"', page)]
    assert len(boxes) == 3 and not any(_overlap(a, b) for a, b in combinations(boxes, 2))


def test_report_has_a_per_poi_table_and_the_served_runs_own_score(report):
    out, page = report
    table = page[page.index('<table id="per-poi">') :]
    table = table[: table.index("</table>")]
    assert all(f"<th>{h}</th>" in table for h in ("precision", "recall", "support"))
    assert table.count("<tr>") == 4  # a header and the three POIs
    train = json.loads((out / "quickstart.json").read_text())["steps"]["train"]
    assert f"accuracy {train['accuracy']:.3f}" in page[page.index('id="served-score"') :]


def test_the_served_score_says_when_the_run_was_not_evaluated():
    from postloc.quickstart.report import _served_run_section

    assert "has not been evaluated" in "".join(_served_run_section({"steps": {"train": True}}))


def test_wide_tables_scroll_and_poi_headers_are_short(report):
    _, page = report
    assert re.search(r'<div class="scroll"><table class="confusion">', page)
    assert "div.scroll { overflow-x: auto;" in page
    headers = re.findall(r'<th title="([^"]*)">([^<]*)</th>', page)
    assert [h for _, h in headers] == ["1", "2", "3"]  # numbered as the rows, the full name in the title
    assert all(title for title, _ in headers)


def test_report_fetches_nothing(report):
    _, page = report
    assert not re.search(r'(src|href)\s*=\s*"(?!data:)[^"#]', page), "a resource outside the page"
    assert not re.search(r"https?://", page)


# -- the served page --------------------------------------------------------------------------------


def test_the_server_draws_the_runs_density_and_a_run_without_it_says_so(report, tmp_path):
    from fastapi.testclient import TestClient

    from postloc.serve.app import build_app

    out, _ = report
    with TestClient(build_app(out / "run"), base_url="http://127.0.0.1") as client:
        info = client.get("/v1/density").json()
        picture = client.get(info["image"])
    assert info["available"] and info["posts"] > 0 and len(info["bounds"]) == 2
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    assert picture.content.startswith(b"\x89PNG")

    from postloc.serve.density import load_density

    bare = tmp_path / "run"
    bare.mkdir()
    assert load_density(bare) == (load_density(bare)[0], None) and not load_density(bare)[0].available
    (bare / "density.json").write_text('{"rows": 3, "cols": 3, "bounds": [0, 0, 0, 0], "cells": []}')
    assert not load_density(bare)[0].available  # a bad grid is no picture, not a server that fails


def test_an_edited_density_file_is_refused_like_data_json(report, tmp_path):
    from postloc.errors import PostlocError
    from postloc.io.run_folder import verify_run_files

    out, _ = report
    run = tmp_path / "run"
    shutil.copytree(out / "run", run)
    verify_run_files(run)
    grid = json.loads((run / "density.json").read_text())
    grid["cells"].append([0, 0, 99])
    (run / "density.json").write_text(json.dumps(grid))
    with pytest.raises(PostlocError, match="density.json"):
        verify_run_files(run)


def test_app_js_adds_the_scale_and_draws_the_pois_on_load():
    script = APP_JS.read_text()
    assert "L.control.scale(" in script and "L.imageOverlay(" in script
    start = script.index('fetch("/v1/pois")')
    assert start < script.index('form.addEventListener("submit"')  # on load, not after a prediction
    assert 'fetch("/v1/density")' in script and "innerHTML" not in script


NODE_HARNESS = r"""
const seen = { scale: 0, dots: 0, overlay: [], tooltips: [], html: [] };
class El {
  constructor() { this.kids = []; this.own = ""; this.style = {}; this.hidden = false; this.classList = { add() {} };
    this.offsetWidth = 60; this.offsetHeight = 14; }
  set textContent(v) { this.own = String(v); } get textContent() { return this.own; }
  set innerHTML(v) { seen.html.push(String(v)); }
  append(...xs) { this.kids.push(...xs); } replaceChildren(...xs) { this.kids = xs; }
  remove() { this.removed = true; } addEventListener() {}
}
const byId = {};
global.document = { getElementById: (id) => (byId[id] = byId[id] || new El()), createElement: () => new El(),
  querySelector: () => new El() };
const panes = {};
const map = { setView() { return map; }, fitBounds() {}, on() {}, createPane(n) { return (panes[n] = new El()); },
  latLngToLayerPoint: ([lat, lon]) => ({ x: lon * 1000, y: -lat * 1000 }) };
const layer = { addTo() { return layer; }, clearLayers() {} };
const marker = { bindTooltip(c) { seen.tooltips.push(c); return marker; }, addTo() { seen.dots++; return marker; } };
global.L = { map: () => map, layerGroup: () => layer, circleMarker: () => marker, tileLayer: () => layer,
  latLngBounds: () => ({ pad() { return this; } }),
  control: { scale: () => ({ addTo() { seen.scale++; } }) },
  imageOverlay: (url, bounds) => { seen.overlay.push([url, bounds]); return layer; } };
const NAME = process.argv[3];
const answers = { "/v1/config": {}, "/v1/about": {},
  "/v1/pois": { pois: [{ poi: "a", name: NAME, lat: 51.0, lon: 13.7 }, { poi: "b", name: "B", lat: 51.0, lon: 13.7 },
                       { poi: "c", name: "C", lat: 51.1, lon: 13.9 }, { poi: "d", name: "", lat: null, lon: null }] },
  "/v1/density": { available: true, image: "/v1/density.png", bounds: [[50, 13], [52, 14]], posts: 9 } };
global.fetch = async (url) => ({ ok: true, status: 200, json: async () => answers[url] });
require(process.argv[2]);
setTimeout(() => {
  const labels = panes.labels.kids;
  console.log(JSON.stringify({ scale: seen.scale, dots: seen.dots, overlay: seen.overlay, html: seen.html,
    tooltips: seen.tooltips.map((t) => (typeof t === "string" ? { html: t } : { text: t.textContent })),
    labels: labels.map((l) => ({ text: l.textContent, shown: !l.removed, at: l.style.transform || "" })),
    note: byId["map-note"].textContent }));
}, 100);
"""


@pytest.mark.browser
def test_app_js_in_node_draws_the_pois_with_names_as_text_and_labels_apart(tmp_path):
    """Marked ``browser`` like the page's other node tests: it needs ``node`` (Debian's nodejs)."""
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "this test needs node (apt-get install nodejs)"
    harness = tmp_path / "harness.js"
    harness.write_text(NODE_HARNESS)
    name = "<img src=x onerror=alert(1)>"
    run = subprocess.run(
        [node, str(harness), str(APP_JS), name], capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(run.stdout)
    assert seen["scale"] == 1 and seen["dots"] == 3 and seen["html"] == []
    assert seen["overlay"] == [["/v1/density.png", [[50, 13], [52, 14]]]]
    assert {"text": name} in seen["tooltips"] and all("text" in t for t in seen["tooltips"])
    labels = {label["text"]: label for label in seen["labels"]}
    assert labels[name]["shown"] and labels["C"]["shown"]
    assert labels[name]["at"] != labels["B"]["at"] or not labels["B"]["shown"]  # the second at one spot moves aside
    assert "9 training posts" in seen["note"]
