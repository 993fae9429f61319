"""The prediction API on raw posts: dicts, Post objects, DataFrames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from postloc.data.schema import Post
from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared
from postloc.errors import BadInputError, PostlocError
from postloc.inference.predictor import Predictor, load
from postloc.models.calibration import apply_temperature
from postloc.training import RunConfig, TrainerConfig, train
from tiny_models import EASY_DATA, SMALL


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("predict")
    prepared = write_synthetic_prepared(
        base / "prepared",
        SyntheticFeaturesConfig(**EASY_DATA, n_posts=300, n_users=40, seed=11),
    )
    config = RunConfig("mrlf", dict(SMALL), TrainerConfig(epochs=5, batch_size=32, progress=False, threads=1))
    train(prepared, base / "run", config)
    return base / "run", pd.read_parquet(prepared / "posts.parquet")


def test_predict_on_dicts_returns_ranked_pois(run):
    predictor = load(run[0])
    posts = [
        {"id": "a", "text": "Lovely day #ripo", "hashtags": []},
        {"text": "", "hashtags": []},  # no id, nothing at all: still a prediction
        {"id": 7, "text": "x", "hashtags": ["#UNSEENTAG"], "image_vector": [0.5] * 8},
    ]
    results = predictor.predict(posts, top_k=3)
    assert len(results) == 3
    for ranked in results:
        assert len(ranked) == 3
        assert set(ranked[0]) == {"poi", "name", "probability", "lat", "lon"}
        probabilities = [r["probability"] for r in ranked]
        assert probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1 + 1e-9
        assert ranked[0]["name"].startswith("Synthetic POI") and isinstance(ranked[0]["lat"], float)
    full = predictor.predict_proba(posts)
    assert np.allclose(full.sum(axis=1), 1.0)
    assert len(predictor.predict(posts, top_k=50)[0]) == 4  # at most every class


def test_predict_normalises_like_prepare(run):
    predictor = load(run[0])
    tag = sorted(predictor.hashtag_vocabulary)[0]
    assert "notkept" not in predictor.hashtag_vocabulary
    frame = predictor.frame(
        [
            {"id": "a", "text": f"Ｈｅｌｌｏ  there #{tag.title()} #{tag.upper()} #notkept"},
            {"id": "b", "text": "x", "hashtags": [f"#{tag.title()}", "notkept"]},
        ]
    )
    # NFKC, whitespace collapsed, case kept
    assert frame.loc[0, "text"] == f"Hello there #{tag.title()} #{tag.upper()} #notkept"
    assert frame.loc[0, "hashtags"] == [tag]  # from the caption, lowercased, deduplicated, rare tags dropped
    assert frame.loc[1, "hashtags"] == [tag]  # given tags win over the caption's


def test_predict_accepts_posts_dataframes_and_matches_training_predictions(run):
    run_dir, posts = run
    predictor = load(run_dir)
    test = posts[posts["split"] == "test"].head(20).reset_index(drop=True)
    from postloc.data.image_features import attach_image_features, load_image_features

    with_images = attach_image_features(test, load_image_features(run_dir.parent / "prepared"))
    raw = predictor.model.predict_proba(with_images)
    assert np.allclose(predictor.predict_proba(with_images, batch_size=7, calibrated=False), raw, atol=1e-6)
    expected = apply_temperature(raw, predictor.temperature)  # what users get: the run's calibration applied
    assert np.allclose(predictor.predict_proba(with_images, batch_size=7), expected, atol=1e-6)
    as_posts = [
        Post(
            id=r.id,
            text=r.text,
            hashtags=list(r.hashtags),
            extra={"image_vector": r.image_vector} if r.image_vector is not None else {},
        )
        for r in with_images.itertuples()
    ]
    assert np.allclose(predictor.predict_proba(as_posts), expected, atol=1e-6)
    single = predictor.predict(as_posts[0], top_k=1)
    assert len(single) == 1 and single[0][0]["poi"] == predictor.classes[int(expected[0].argmax())]


def test_predict_errors(run, tmp_path):
    predictor = load(run[0])
    with pytest.raises(BadInputError, match="hashtags"):
        predictor.predict([{"id": "a", "hashtags": "notalist"}])
    with pytest.raises(PostlocError, match="expected a dict"):
        predictor.predict([42])
    with pytest.raises(PostlocError, match="holds no trained model"):
        load(tmp_path)
    assert predictor.predict([]) == []


def test_predictor_from_a_model_folder_without_run_metadata(run):
    from postloc.models import load_model

    model = load_model(run[0] / "best")
    predictor = Predictor(model)
    ranked = predictor.predict([{"id": "a", "text": "hello"}], top_k=2)[0]
    assert ranked[0]["lat"] is None and ranked[0]["poi"] in model.classes_
    assert load(run[0] / "best").pois[0]["poi"] == model.classes_[0]
