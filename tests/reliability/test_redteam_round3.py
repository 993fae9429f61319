"""Issue 29, the final red-team pass: hostile cases the 17 fixes of the round did not cover.

* ``GET /v1/pois`` rebuilt and validated the whole POI list on the event loop for every request: with a
  large ``--pois`` table (100k names, a 52 MB answer) each request blocked the server for about a second;
* ``hashtags.csv`` wrote a given hashtag such as ``=cmd|x`` raw (a formula in a spreadsheet);
* a ``Host`` header whose "port" is not a number (``127.0.0.1:80@evil.example``) passed the allow-list.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from postloc import load_prepared, prepare
from postloc.inference.predictor import load
from postloc.serve.app import ServeSettings, create_app
from postloc.serve.limits import Limits
from postloc.training.api import data_info
from prepare_posts import SMALL, labelled_posts
from serve_support import small_run, worst_loop_gap

LOCAL = "http://localhost"
LIFTED = {"rate_per_second": 1e6, "burst": 10**6}


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    return load(small_run(tmp_path_factory))


# --- GET /v1/pois: built once, never on the event loop ------------------------------------------------


def test_a_large_poi_list_does_not_block_the_event_loop(predictor):
    """60k POIs known by name: four GETs of /v1/pois used to stall a loop ticker for seconds."""

    many = copy.copy(predictor)
    extra = [{"poi": f"n{i}", "name": "word " * 40, "lat": 1.0, "lon": 2.0} for i in range(60_000)]
    many.pois = list(predictor.pois) + extra
    app = create_app(many, ServeSettings(limits=Limits(**LIFTED)))

    worst_gap, answers = worst_loop_gap(
        app, lambda c: [*[c.get("/v1/pois") for _ in range(4)], c.get("/healthz")], LOCAL
    )
    assert [a.status_code for a in answers] == [200] * 5
    body = answers[0].json()
    assert len(body["pois"]) == len(predictor.pois) + 60_000
    assert body["pois"][-1] == {"poi": "n59999", "name": "word " * 40, "lat": 1.0, "lon": 2.0}
    # the blocking code stalled the loop 2.1 s here; a loaded 2-core CI machine adds tenths of a second
    assert worst_gap < 1.0, worst_gap


def test_the_poi_list_answer_is_unchanged(predictor):
    with TestClient(create_app(predictor, ServeSettings(limits=Limits(**LIFTED))), base_url=LOCAL) as client:
        response = client.get("/v1/pois")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    expected = [
        {"poi": p["poi"], "name": p.get("name") or "", "lat": p.get("lat"), "lon": p.get("lon")} for p in predictor.pois
    ]
    assert response.json() == {"pois": expected}


# --- hashtags.csv: no formulas, and the vocabulary round-trips -----------------------------------------


@pytest.mark.parametrize("engine", ["memory", "duckdb"])
def test_hashtags_csv_guards_formulas_and_the_vocabulary_round_trips(jsonl_file, tmp_path, engine):
    records = labelled_posts()
    for r in records[:12]:
        r["hashtags"] = ["=cmd|x", "@sum", "bridge"]
    out = tmp_path / "out"
    prepare(jsonl_file(records), out, replace(SMALL, engine=engine))
    lines = (out / "hashtags.csv").read_text().splitlines()
    assert not [line for line in lines if line[:1] in "=+-@"], lines
    assert "'=cmd|x,12,True" in lines and "'@sum,12,True" in lines
    vocabulary = data_info(load_prepared(out))["hashtag_vocabulary"]
    assert "=cmd|x" in vocabulary and "@sum" in vocabulary and not [t for t in vocabulary if t.startswith("'")]


# --- Host: a port that is not a number is not a port ---------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1:80@evil.example", "localhost:evil.example", "localhost:", "127.0.0.1:8000:1", "[::1]x"]
)
def test_a_host_header_with_a_malformed_port_is_refused(predictor, host):
    with TestClient(create_app(predictor, ServeSettings(limits=Limits(**LIFTED))), base_url=LOCAL) as client:
        response = client.get("/healthz", headers={"host": host})
    assert response.status_code == 400, response.text
    assert "--allowed-hosts" in json.loads(response.text)["error"]["message"]


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:1", "[::1]:8000", "LOCALHOST"])
def test_a_loopback_host_with_or_without_a_port_is_allowed(predictor, host):
    with TestClient(create_app(predictor, ServeSettings(limits=Limits(**LIFTED))), base_url=LOCAL) as client:
        assert client.get("/healthz", headers={"host": host}).status_code == 200
