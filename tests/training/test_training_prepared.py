"""End to end on folders made by ``postloc prepare`` (the real pipeline, not the synthetic writer)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from postloc import datasets
from postloc.data.prepare import PrepareConfig, prepare
from postloc.inference.predictor import load
from postloc.training import RunConfig, TrainerConfig, evaluate, train
from tiny_models import SMALL

PLACES = {
    "bridge": (40.7061, -73.9969, "brooklyn bridge river view"),
    "park": (40.7829, -73.9654, "central park trees lake"),
    "square": (40.7580, -73.9855, "times square lights crowd"),
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from conftest import write_jsonl

    base = tmp_path_factory.mktemp("prep")
    rng = np.random.default_rng(0)
    records = []
    for i in range(150):
        poi = list(PLACES)[i % 3]
        lat, lon, words = PLACES[poi]
        record = {
            "id": f"p{i}",
            "text": f"{rng.choice(words.split())} day out {i}",
            "hashtags": [poi, "nyc"],
            "poi": poi,
            "user": f"u{i % 30}",
        }
        if i % 4:  # a quarter of the posts have no coordinates of their own
            record.update(lat=lat + rng.normal(0, 1e-3), lon=lon + rng.normal(0, 1e-3))
        records.append(record)
    source = write_jsonl(base / "posts.jsonl", records)
    (base / "pois.csv").write_text(
        "poi,lat,lon,name\n" + "".join(f"{k},{v[0]},{v[1]},{k.title()}\n" for k, v in PLACES.items())
    )
    out = base / "prepared"
    prepare(
        source,
        out,
        PrepareConfig(min_hashtag_count=1, min_poi_posts=5, min_poi_users=1, languages=()),
        pois_csv=base / "pois.csv",
    )
    return out


def test_train_evaluate_predict_on_a_prepared_folder(prepared, tmp_path):
    trainer = TrainerConfig(epochs=3, batch_size=16, progress=False, threads=1)
    for name, params in (("mrlf", SMALL), ("tfidf-logreg", {}), ("majority", {})):
        run = tmp_path / name
        train(prepared, run, RunConfig(name, dict(params), trainer))
        report = evaluate(run, "test")
        assert report["distance_reference"].startswith("mixed (")  # post coordinates where known, else centre
        assert report["posts"] == report["distance_posts"] > 0
    assert json.loads((tmp_path / "tfidf-logreg" / "eval-test.json").read_text())["accuracy"] > 0.9
    ranked = load(tmp_path / "mrlf").predict([{"id": "q", "text": "Central park at dawn #park"}], top_k=2)[0]
    assert ranked[0]["name"] in ("Bridge", "Park", "Square") and ranked[0]["lat"] is not None


@pytest.mark.slow
def test_mrlf_on_the_embedded_dresden_sample(tmp_path):
    out = tmp_path / "dresden"
    prepare(datasets.path("dresden"), out, PrepareConfig(), datasets.read_options("dresden"))
    run = tmp_path / "run"
    result = train(out, run, RunConfig("mrlf", {}, TrainerConfig(epochs=2, progress=False)))
    assert result.summary["epochs_run"] == 2
    report = evaluate(run, "test")
    assert report["distance_reference"] == "post coordinates"
    assert report["accuracy"] > 0.15  # the majority class holds about 12 % of the posts
