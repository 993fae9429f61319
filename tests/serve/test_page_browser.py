"""The web page in a real headless Chromium (Debian's package; never ``playwright install``).

Run with ``make test-browser`` (installs Debian's chromium when missing, then ``pytest -m browser``);
the default test run deselects it. Saves a screenshot to ``tests/artifacts/page.png`` for a human
to look at.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import playwright.sync_api as playwright
import pytest

from serve_support import decisive_tag, mean_colour_featurizer, png_bytes, small_run
from serving import serving

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.browser


def test_page_predicts_and_draws_the_map(tmp_path_factory, tmp_path):
    from postloc.inference.predictor import load
    from postloc.serve.app import ServeSettings, create_app

    run = small_run(tmp_path_factory)
    tag, poi = decisive_tag(run)
    predictor = load(run)
    name = next(p["name"] for p in predictor.pois if p["poi"] == poi)
    app = create_app(predictor, ServeSettings(), mean_colour_featurizer())
    photo = tmp_path / "holiday.png"
    photo.write_bytes(png_bytes((320, 240), (40, 120, 200)))
    requests_outside: list[str] = []
    errors: list[str] = []

    with serving(app) as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on(
                "request",
                lambda r: (
                    None
                    if r.url.startswith(url) or r.url.startswith(("data:", "blob:"))
                    else requests_outside.append(r.url)
                ),
            )
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/")
            page.fill("#text", "Evening walk with friends")
            page.fill("#hashtags", f"#{tag} #sunset")
            page.set_input_files("#photo", str(photo))
            page.wait_for_selector("#preview:not([hidden])")
            page.click("#submit")
            page.wait_for_selector("#bars li", timeout=15_000)
            page.wait_for_selector("path.poi-marker", state="attached", timeout=15_000)
            shown = min(5, len(predictor.classes))
            assert page.locator("path.poi-marker").count() == shown
            bars = page.locator("#bars li")
            assert bars.count() == shown and name in bars.first.inner_text()
            width = page.eval_on_selector("#bars li .bar span", "e => e.getBoundingClientRect().width")
            assert width > 10
            rows = page.locator("#explain tbody tr")
            assert rows.count() >= 4 and f"#{tag}" in rows.first.inner_text()
            assert "Photo:" in page.inner_text("#image-note")
            assert "sunset" in page.inner_text("#ignored") or page.inner_text("#ignored") == ""
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "page.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert not requests_outside, requests_outside  # no CDN, no tiles: the page works offline


@pytest.mark.parametrize("data", ["synthetic-with-photos", "dresden"])
def test_quickstart_report_opens_and_its_run_is_served(tmp_path, data):
    """``postloc quickstart`` ends in a report that Chromium renders offline and a page that predicts."""
    from postloc import datasets
    from postloc.data.prepare import ReadOptions
    from postloc.datasets.synthetic import SyntheticPostsConfig, generate
    from postloc.quickstart import QuickstartConfig, quickstart
    from postloc.serve.app import ServeSettings, build_app

    if data == "dresden":
        source = datasets.path("dresden")
        embedded = datasets.read_options("dresden")
        read = ReadOptions(embedded.format, embedded.columns, embedded.list_sep, skip_bad=True)
    else:
        generate(tmp_path / "syn", SyntheticPostsConfig(pois=5, posts_per_poi=30, width=160, height=120))
        source, read = tmp_path / "syn" / "posts.jsonl", ReadOptions(skip_bad=True)
    result = quickstart(source, tmp_path / "out", QuickstartConfig(read=read, quick=True, progress=False))
    if data != "dresden":
        assert result.manifest["steps"]["images"]["computed"], result.manifest["steps"]["images"]
    requests_outside: list[str] = []
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            local = ["file:", "data:", "blob:"]  # the report; then the served page's own origin
            page.on("request", lambda r: None if r.url.startswith(tuple(local)) else requests_outside.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(result.report.resolve().as_uri())
            assert page.locator("svg#map circle").count() == result.manifest["steps"]["prepare"]["pois"]
            assert page.locator("svg#map").bounding_box()["width"] > 300
            assert "stack" in page.inner_text("tr.main")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"quickstart-{data}.png"), full_page=True)
            with serving(build_app(result.run_dir, ServeSettings())) as url:
                local.append(url)
                page.goto(url + "/")
                page.fill("#hashtags", "#zwinger" if data == "dresden" else "#harbor")
                page.click("#submit")
                page.wait_for_selector("#bars li", timeout=15_000)
                assert page.locator("#bars li").count() >= 1
        finally:
            browser.close()
    assert not errors, errors
    assert not requests_outside, requests_outside


def test_page_marks_an_answer_that_comes_from_a_name_only(tmp_path_factory, tmp_path):
    """Served with ``--pois``: a POI without training posts, named in the caption, is shown as "name only"."""
    from postloc.serve.app import ServeSettings, build_app

    run = small_run(tmp_path_factory)
    names = tmp_path / "names.csv"
    names.write_text("poi,lat,lon,name\nfss,-37.8183,144.9671,Flinders Street Station\n")
    app = build_app(run, ServeSettings(), names=names)
    errors: list[str] = []
    with serving(app) as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/")
            page.fill("#text", "Waiting under the clocks at Flinders Street Station")
            page.click("#submit")
            page.wait_for_selector("#bars li", timeout=15_000)
            first = page.locator("#bars li").first
            assert "Flinders Street Station" in first.inner_text() and "name only" in first.inner_text()
            assert "comes from the place's name only" in page.inner_text("#source-note")
            assert page.locator("path.poi-marker.name-only").count() >= 1
            page.screenshot(path=str(ARTIFACTS / "page-name-only.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors


DOCS_IMG = Path(__file__).parents[2] / "docs" / "img"


def _boxes_apart(page, selector: str) -> int:
    """How many elements ``selector`` matches on screen; fails when two of their boxes overlap."""
    boxes = page.eval_on_selector_all(
        selector, "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })"
    )
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1]
            assert apart, (a, b)
    return len(boxes)


def test_the_city_map_in_the_report_and_the_page_offline(tmp_path):
    """Dresden's posts through quickstart: report.html and the served page show the posts' density, a scale
    bar and the POI names apart, as the page loads, with no request outside; screenshots in docs/img/."""
    from postloc import datasets
    from postloc.data.prepare import ReadOptions
    from postloc.quickstart import QuickstartConfig, quickstart
    from postloc.serve.app import ServeSettings, build_app

    embedded = datasets.read_options("dresden")
    read = ReadOptions(embedded.format, embedded.columns, embedded.list_sep, skip_bad=True)
    config = QuickstartConfig(read=read, quick=True, progress=False, model="tfidf-logreg")
    result = quickstart(datasets.path("dresden"), tmp_path / "out", config)
    requests_outside: list[str] = []
    errors: list[str] = []
    DOCS_IMG.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            local = ["file:", "data:", "blob:"]
            page.on("request", lambda r: None if r.url.startswith(tuple(local)) else requests_outside.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(result.report.resolve().as_uri())
            assert page.eval_on_selector("svg#map image#density", "e => e.getBBox().width") > 100
            assert page.locator("svg#map #scale-bar").text_content().endswith(" km")
            assert _boxes_apart(page, "svg#map text.label") >= 5
            assert page.locator("#per-poi tr").count() > 5
            wrapper = page.eval_on_selector("table.confusion", "e => getComputedStyle(e.parentElement).overflowX")
            assert wrapper == "auto"
            page.locator("svg#map").screenshot(path=str(DOCS_IMG / "report-map.png"))
            with serving(build_app(result.run_dir, ServeSettings())) as url:
                local.append(url)
                page.goto(url + "/")
                page.wait_for_selector(".leaflet-control-scale-line", timeout=15_000)
                page.wait_for_selector(".leaflet-density-pane img", state="attached", timeout=15_000)
                page.wait_for_function(
                    "() => { const i = document.querySelector('.leaflet-density-pane img');"
                    " return i.complete && i.naturalWidth > 0; }"
                )
                assert page.locator("path.poi-dot").count() == len(
                    json.loads((result.run_dir / "data.json").read_text())["pois"]
                )
                assert _boxes_apart(page, ".leaflet-labels-pane .poi-name") >= 5
                assert "training posts" in page.inner_text("#map-note")
                assert "tfidf-logreg" in page.inner_text("#model-inputs")
                page.locator("#results").screenshot(path=str(DOCS_IMG / "page-map.png"))
        finally:
            browser.close()
    assert not errors, errors
    assert not requests_outside, requests_outside
