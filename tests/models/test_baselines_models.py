"""Issue-6 baselines: fit above chance on a planted signal, identical probabilities after save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from postloc.models.registry import create_model, get_model, list_models, load_model
from postloc.nn.config import TrainerConfig

TRAINER = TrainerConfig(epochs=6, batch_size=32, lr=5e-3, early_stopping=0, progress=False, seed=0)
QUICK = {
    "tagvisor": {"n_estimators": 10},
    "deepgeo": {"char_dim": 8, "hidden": 8, "attention": 8, "max_chars": 24},
    "loctwi": {"buckets": 997, "dim": 16},
    "resnet50": {"hidden": 16},
    "vgg16": {"hidden": 0},
    "knn-image": {"k": 5},
    "mrlf-plus": {
        "filters": 8,
        "heads": 2,
        "hidden": 8,
        "char_dim": 4,
        "word_dim": 4,
        "max_text_chars": 30,
        "max_hashtag_chars": 20,
        "modalities": ["text", "hashtags"],
    },
}


def planted(n: int = 240, classes: int = 3, seed: int = 0) -> pd.DataFrame:
    """Each POI has its own words, tag and image cluster; a fifth of the posts lack an image."""
    rng = np.random.default_rng(seed)
    words = [["alpha", "anvil"], ["bravo", "bison"], ["charlie", "cobra"]]
    rows = []
    for i in range(n):
        c = int(rng.integers(classes))
        text = f"{words[c][rng.integers(2)]} {['nice', 'view', 'day'][rng.integers(3)]}"
        tags = [f"tag{c}", "generic"] if rng.random() < 0.9 else ["generic"]
        vec = (np.eye(8)[c] * 3 + rng.normal(0, 1, 8)).astype(np.float32) if rng.random() < 0.8 else None
        rows.append({"id": f"p{i}", "text": text, "hashtags": tags, "poi": f"poi{c}", "image_vector": vec})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("name", sorted(QUICK))
def test_baseline_learns_and_round_trips(name, tmp_path):
    train, test = planted(240, seed=0), planted(90, seed=1)
    model = create_model(name, QUICK[name], TRAINER)
    model.fit(train, test.iloc[:30], classes=["poi0", "poi1", "poi2"])
    proba = model.predict_proba(test)
    assert proba.shape == (90, 3)
    assert np.allclose(proba.sum(axis=1), 1.0)
    y = test["poi"].map({"poi0": 0, "poi1": 1, "poi2": 2}).to_numpy()
    assert (proba.argmax(axis=1) == y).mean() > 0.6  # chance is about 1/3
    model.save(tmp_path / name)
    again = load_model(tmp_path / name)
    assert type(again) is type(model)
    np.testing.assert_array_equal(again.predict_proba(test), proba)


def test_all_baselines_registered():
    names = set(list_models())
    assert {"tagvisor", "deepgeo", "loctwi", "resnet50", "resnet101", "densenet121", "vgg16", "knn-image"} <= names
    assert get_model("resnet101").backbone == "resnet101"


def test_forest_arrays_match_scikit_learn():
    from sklearn.ensemble import RandomForestClassifier

    from postloc.models.baselines.forest_arrays import ForestArrays

    rng = np.random.default_rng(0)
    X = rng.random((200, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 1).astype(int) + (X[:, 2] > 0.7)
    forest = RandomForestClassifier(n_estimators=7, random_state=0).fit(X, y)
    np.testing.assert_allclose(ForestArrays.from_forest(forest).predict_proba(X), forest.predict_proba(X), atol=1e-12)


def test_image_head_without_image_vectors_is_a_clear_error():
    from postloc.errors import PostlocError

    data = planted(30).assign(image_vector=None)
    with pytest.raises(PostlocError, match="no image vectors"):
        create_model("resnet50", {}, TRAINER).fit(data)


def test_mrlf_plus_config_takes_mrlf_fields_and_saves_the_same_keys():
    from dataclasses import asdict, fields

    from postloc.models.baselines.mrlf_plus import MRLFPlusConfig
    from postloc.models.mrlf import MRLFConfig

    config = asdict(MRLFPlusConfig())
    assert sorted(config) == [
        "char_dim",
        "filters",
        "fusion",
        "geo_smoothing_km",
        "heads",
        "hidden",
        "label_smoothing",
        "max_hashtag_chars",
        "max_text_chars",
        "modalities",
        "user_weight_power",
        "weights",
        "word_dim",
    ]
    mrlf = {f.name: f for f in fields(MRLFConfig)}
    for f in fields(MRLFPlusConfig):
        if f.name != "weights":
            assert (f.type, f.default) == (mrlf[f.name].type, mrlf[f.name].default)
    assert get_model("mrlf-plus")({"filters": 8, "heads": 2}).config.filters == 8
