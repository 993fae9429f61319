"""Cold start: POIs known only by name (folding, segmentation, gazetteer files, the scorer, the blend, CLI, API)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from postloc.data.gazetteer import Gazetteer, Place, places_from_records, read_gazetteer
from postloc.errors import BadInputError, PostlocError
from postloc.inference.names import NameBlender, NameIndex
from postloc.inference.predictor import Predictor
from postloc.models.base import ModelInputs
from postloc.text.names import fold, name_tokens, segment, squash

PLACES = [
    Place("fss", "Flinders Street Station", -37.8183, 144.9671),
    Place("cdf", "Café de Flore", 48.8542, 2.3326),
    Place("rocks", "The Rocks", -33.8599, 151.2090),
    Place("pier", "Stone Pier", 1.0, 1.0),
]


class FixedModel:
    """A stand-in model: the same distribution over two trained POIs for every post."""

    name = "fixed"
    classes_ = ["a", "b"]
    inputs_used = ModelInputs.reading("text", "hashtags")

    def predict_proba(self, frame):
        return np.tile([0.8, 0.2], (len(frame), 1))


def predictor(weight: float | None = 0.5) -> Predictor:
    model_pois = [{"poi": "a", "name": "Harbour Bridge", "lat": -33.85, "lon": 151.21}, {"poi": "b", "name": ""}]
    p = Predictor(FixedModel(), model_pois)
    if weight is not None:
        p.use_names(Gazetteer(list(PLACES)), weight)
    return p


# --- folding and segmentation ------------------------------------------------------------------


def test_fold_strips_accents_case_and_compatibility_forms():
    assert fold("Café de FLORE") == "cafe de flore"
    assert fold("Straße") == fold("STRASSE")
    assert fold("ｎｙｃ") == "nyc"
    assert name_tokens("Flinders-Street  Station!") == ["flinders", "street", "station"]
    assert squash("Café de Flore") == "cafedeflore"


def test_segment_uses_only_the_gazetteer_vocabulary():
    vocabulary = {"flinders", "street", "station", "st", "flin", "ders"}
    assert segment("flindersstreetstation", vocabulary) == ["flinders", "street", "station"]  # fewest tokens
    assert segment("flindersstreetnyc", vocabulary) is None  # "nyc" names nothing: no invented words
    assert segment("", vocabulary) is None
    assert segment("st" * 60, {"st"}) is None  # past MAX_SEGMENT_CHARS: not tried


# --- gazetteer files ---------------------------------------------------------------------------


def test_csv_gazetteer_and_its_errors(tmp_path):
    good = tmp_path / "pois.csv"
    good.write_text(
        "poi,lat,lon,name,extra\nfss,-37.8,144.9,Flinders Street Station,x\n\n2,48.85,2.33,Café de Flore,y\n"
    )
    table = read_gazetteer(good)
    assert [(p.poi, p.name) for p in table.places] == [("fss", "Flinders Street Station"), ("2", "Café de Flore")]
    cases = {
        "poi,lat,lon\n1,2,3\n": "missing ['name']",
        "poi,lat,lon,name\n1,200,3,X\n": ':2: "lat" must be a number in [-90, 90]',
        "poi,lat,lon,name\n1,nan,3,X\n": '"lat" must be a number',
        "poi,lat,lon,name\n1,2,3,\n": '"name" must not be empty',
        "poi,lat,lon,name\n1,2,3,X\n1,2,3,Y\n": "appears twice",
        "poi,lat,lon,name\n1,2\n": "has 2 fields",
        "": "is empty",
    }
    for text, words in cases.items():
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(BadInputError, match=words.replace("[", r"\[").replace("]", r"\]")):
            read_gazetteer(bad)


def point(properties: dict, coordinates) -> dict:
    return {"type": "Feature", "properties": properties, "geometry": {"type": "Point", "coordinates": coordinates}}


def test_geojson_gazetteer_takes_named_points_and_counts_the_rest(tmp_path):
    features = [
        point({"@id": "node/1", "name": "Café de Flore"}, [2.33, 48.85]),
        {**point({"name": "The Rocks"}, [151.2, -33.86]), "id": "node/2"},
        point({"name": "Flinders Street Station"}, [144.97, -37.82]),
        point({"amenity": "bench"}, [0, 0]),
        {
            **point({"name": "A park"}, [0, 0]),
            "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1]]]},
        },
    ]
    path = tmp_path / "export.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    table = read_gazetteer(path)
    assert [p.poi for p in table.places] == ["node/1", "node/2", "flinders-street-station"]
    assert (table.places[0].lat, table.places[0].lon) == (48.85, 2.33)
    assert table.skipped == {"no name": 1, "not a point": 1}
    collection = '{"type": "FeatureCollection", "features": [%s]}'
    for text, words in {
        "[1, 2]": "FeatureCollection",
        collection % "3": "Feature object",
        collection % json.dumps(point({"name": "X"}, [500, 1])): "coordinates",
        collection % json.dumps(point({"name": "X"}, None)): "without",
        "{" * 100_000: "not valid JSON",
    }.items():
        bad = tmp_path / "bad.geojson"
        bad.write_text(text)
        with pytest.raises(BadInputError, match=words):
            read_gazetteer(bad)


def test_gazetteer_files_must_be_small_regular_files(tmp_path, monkeypatch):
    import postloc.data.gazetteer as gazetteer

    with pytest.raises(BadInputError, match="device"):
        read_gazetteer("/dev/zero")
    link = tmp_path / "link.csv"
    link.symlink_to("/dev/zero")
    with pytest.raises(BadInputError, match="device"):
        read_gazetteer(link)
    big = tmp_path / "big.csv"
    big.write_text("poi,lat,lon,name\n" + "1,2,3,X\n" * 100)
    monkeypatch.setattr(gazetteer, "GAZETTEER_MAX_BYTES", 100)
    with pytest.raises(BadInputError, match="larger than"):
        read_gazetteer(big)


def test_run_pois_without_a_real_name_are_not_places():
    table = places_from_records(
        [{"poi": "1", "name": "#zwinger #semperoper"}, {"poi": "2", "name": ""}, {"poi": "3", "name": "Zwinger"}]
    )
    assert [p.poi for p in table.places] == ["3"] and table.skipped == {"no name": 2}


# --- the scorer --------------------------------------------------------------------------------


def test_evidence_full_partial_and_none():
    index = NameIndex(PLACES, range(len(PLACES)))
    assert index.evidence("Sunset at flinders street station", []) == {0: 1.0}
    assert index.evidence("", ["FlindersStreetStation"]) == {0: 1.0}
    assert index.evidence("", ["flindersstreetstationmelbourne"]) == {0: 1.0}  # the name inside a longer tag
    assert index.evidence("coffee at CAFE DE FLORE", []) == {1: 1.0}  # accents and case folded
    partial = index.evidence("waiting at flinders station", [])
    assert set(partial) == {0} and 0 < partial[0] < 1
    assert index.evidence("the view from the top", []) == {}  # "the" alone names no place
    assert index.evidence("a lovely day", ["travel", "nofilter"]) == {}
    # words of a name written in full are no partial evidence for another name
    crystal = NameIndex([*PLACES, Place("c", "Crystal Pier", 0, 0)], range(5))
    assert crystal.evidence("Crystal Pier at dusk", []) == {4: 1.0}


# --- the blend in the predictor ----------------------------------------------------------------


def test_posts_without_name_evidence_keep_the_models_predictions():
    plain, named = predictor(None), predictor(0.5)
    posts = [{"text": "a lovely day", "hashtags": ["travel"]}, {"text": "", "hashtags": []}]
    assert named.classes == ["a", "b", "fss", "cdf", "rocks", "pier"]
    assert np.array_equal(named.predict_proba(posts)[:, :2], plain.predict_proba(posts))
    assert not named.predict_proba(posts)[:, 2:].any()
    for with_names, without in zip(named.predict(posts, top_k=5), plain.predict(posts, top_k=5), strict=True):
        assert [{k: v for k, v in c.items() if k != "source"} for c in with_names] == without  # no zero name-only rows
        assert {c["source"] for c in with_names} == {"model"}


def test_a_poi_without_training_posts_is_answered_from_its_name():
    answers = predictor(0.5).answers(
        [{"text": "Rush hour", "hashtags": ["flindersstreetstation", "melbourne"]}], top_k=3
    )
    top = answers[0]
    assert top["poi"] == "fss" and top["source"] == "names" and top["confidence"] == pytest.approx(0.5)
    assert top["predictions"][0]["lat"] == pytest.approx(-37.8183)
    assert [c["source"] for c in top["predictions"]] == ["names", "model", "model"]
    proba = predictor(0.5).predict_proba([{"text": "Rush hour at Flinders Street Station"}])
    assert proba.sum() == pytest.approx(1.0)


def test_trained_pois_get_name_evidence_too_and_gazetteer_duplicates_merge():
    p = Predictor(FixedModel(), [{"poi": "a", "name": "Harbour Bridge"}, {"poi": "b", "name": "Café de Flore"}])
    p.use_names(Gazetteer(list(PLACES)), 0.5)
    assert p.classes == ["a", "b", "fss", "rocks", "pier"]  # Café de Flore is the run's "b", not a new POI
    answer = p.answers([{"text": "cafe de flore"}])[0]
    assert answer["poi"] == "b" and answer["source"] == "model+names"
    assert answer["confidence"] == pytest.approx(0.5 * 0.2 + 0.5)
    with pytest.raises(PostlocError, match="name weight"):
        NameBlender([], Gazetteer([]), 1.5)


def test_instaloader_location_names_find_a_hashtag(tmp_path):
    pytest.importorskip("instaloader")
    import instaloader_fixtures as fx
    from postloc.data.readers import read_posts

    with fx.no_network():
        tree = fx.build_download_tree(tmp_path / "dl")
    places: dict[str, dict] = {}  # the locations instaloader saved, by id: their names and centres
    for post in read_posts(tree.root):
        if post.poi and post.extra.get("poi_name"):
            places.setdefault(
                post.poi, {"poi": post.poi, "name": post.extra["poi_name"], "lat": post.lat, "lon": post.lon}
            )
    gazetteer = places_from_records(places.values())
    assert "Central Park" in {p.name for p in gazetteer.places}
    index = NameIndex(gazetteer.places, range(len(gazetteer.places)))
    found = index.evidence("Autumn in #CentralPark", ["CentralPark"])
    assert [gazetteer.places[i].name for i, e in found.items() if e == 1.0] == ["Central Park"]


# --- command line and HTTP API -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared
    from postloc.training import RunConfig, TrainerConfig, train

    base = tmp_path_factory.mktemp("cold-start-run")
    prepared = write_synthetic_prepared(
        base / "prepared", SyntheticFeaturesConfig(n_pois=3, n_posts=150, n_users=30, seed=3)
    )
    train(prepared, base / "run", RunConfig("tfidf-logreg", {}, TrainerConfig(progress=False)))
    return base / "run"


def test_predict_command_with_pois(tiny_run, tmp_path, capsys):
    from postloc.cli import main

    names = tmp_path / "names.csv"
    names.write_text("poi,lat,lon,name\nfss,-37.8183,144.9671,Flinders Street Station\n")
    source = tmp_path / "posts.jsonl"
    posts = [{"id": "1", "text": "Rush hour", "hashtags": ["flindersstreetstation"]}, {"id": "2", "text": "a day out"}]
    source.write_text("".join(json.dumps(p) + "\n" for p in posts))
    plain, named = tmp_path / "plain.jsonl", tmp_path / "named.jsonl"
    assert main(["predict", str(tiny_run), str(source), "-o", str(plain), "--quiet"]) == 0
    assert main(["predict", str(tiny_run), str(source), "-o", str(named), "--quiet", "--pois", str(names)]) == 0
    assert "1 of them known by name only" in capsys.readouterr().out
    without = [json.loads(line) for line in plain.read_text().splitlines()]
    rows = [json.loads(line) for line in named.read_text().splitlines()]
    assert "source" not in without[0] and "source" not in without[0]["predictions"][0]
    assert rows[0]["poi"] == "fss" and rows[0]["source"] == "names" and rows[0]["predictions"][0]["source"] == "names"
    assert rows[1]["source"] == "model"  # no name in the post: the model's answer, unchanged
    assert [(c["poi"], c["probability"]) for c in rows[1]["predictions"]] == [
        (c["poi"], c["probability"]) for c in without[1]["predictions"]
    ]
    parquet = tmp_path / "named.parquet"
    assert main(["predict", str(tiny_run), str(source), "-o", str(parquet), "--quiet", "--pois", str(names)]) == 0
    import pandas as pd

    assert list(pd.read_parquet(parquet)["source"]) == ["names", "model"]
    assert main(["predict", str(tiny_run), str(source), "-o", str(plain), "--name-weight", "0.3"]) == 2


def test_http_api_says_which_answers_came_from_names():
    from fastapi.testclient import TestClient

    from postloc.serve.app import ServeSettings, create_app
    from postloc.serve.limits import Limits

    settings = ServeSettings(limits=Limits(rate_per_second=1000, burst=1000))
    with TestClient(create_app(predictor(0.5), settings), base_url="http://localhost") as client:
        body = client.post("/v1/predict", json={"text": "Rush hour at Flinders Street Station", "top_k": 3}).json()
        assert body["poi"] == "fss" and body["source"] == "names" and body["predictions"][0]["source"] == "names"
        assert [p["poi"] for p in client.get("/v1/pois").json()["pois"]][2] == "fss"
        explained = client.post("/v1/explain", json={"text": "Rush hour", "hashtags": ["flindersstreetstation"]}).json()
        assert explained["source"] == "names" and explained["explanation"]["target_poi"] == "fss"
        assert explained["explanation"]["ignored_hashtags"] == []  # the tag named a place: not "without effect"
        parts = {c["token"]: c["contribution"] for c in explained["explanation"]["contributions"]}
        assert parts["flindersstreetstation"] == pytest.approx(0.5)  # removing the tag removes the name's share
        plain = client.post("/v1/predict", json={"text": "a lovely day"}).json()
        assert plain["source"] == "model"
    with TestClient(create_app(predictor(None), settings), base_url="http://localhost") as client:
        body = client.post("/v1/predict", json={"text": "Rush hour at Flinders Street Station"}).json()
        assert "source" not in body and "source" not in body["predictions"][0]  # no --pois: responses as before
