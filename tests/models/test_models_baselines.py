"""Registry and the reference baselines (majority, tfidf-logreg)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, make_synthetic
from postloc.errors import PostlocError
from postloc.models import create_model, describe_models, get_model, list_models, load_model, register, registry
from postloc.models.base import Estimator


@pytest.fixture(scope="module")
def splits():
    data = make_synthetic(SyntheticFeaturesConfig(n_pois=5, n_posts=500, seed=2, text_signal=0.3, tag_signal=0.5))
    return {s: data.posts[data.posts["split"] == s].reset_index(drop=True) for s in ("train", "val", "test")}


def test_registry_lists_and_resolves_builtin_models():
    assert {"mrlf", "majority", "tfidf-logreg"} <= set(list_models())
    assert get_model("majority").name == "majority"
    with pytest.raises(PostlocError, match="unknown model 'nope'; available:"):
        get_model("nope")


def test_register_a_custom_model(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # leave no test model behind

    @dataclass(frozen=True)
    class Empty:
        pass

    @register
    class Constant(Estimator):
        """A custom model only says its facts, fits, predicts and names what it keeps; save/load are the base's."""

        name = "test-constant"
        Config = Empty

        def _fit(self, train, val, *, classes, options):
            self.classes_ = self._resolve_classes(train, classes)

        def predict_proba(self, posts):
            return np.full((len(posts), len(self.classes_)), 1 / len(self.classes_))

        def _manifest_extra(self):
            return {"note": "kept"}

        def _read_files(self, folder, manifest):
            self.note = manifest["note"]

    assert get_model("test-constant") is Constant
    model = create_model("test-constant").fit(pd.DataFrame({"poi": ["a", "b"]}))
    assert model.predict(pd.DataFrame({"x": [1]})) == ["a"]
    again = load_model(model.save(tmp_path / "constant"))
    assert type(again) is Constant and again.classes_ == ["a", "b"] and again.note == "kept"
    with pytest.raises(ValueError, match="already registered"):
        register("test-constant")(type("Other", (Constant,), {}))
    assert register("test-other-name")(type("Other", (Constant,), {})).name == "test-constant"  # the older spelling
    assert get_model("test-other-name").__name__ == "Other"


def test_every_builtin_model_carries_its_registry_name():
    """The lazy table says where each name's class lives; the name itself is written on the class."""
    for name in registry.BUILTIN:
        cls = get_model(name)
        assert cls.name == name
        assert all(set(need.split("|")) <= {"text", "hashtags", "image"} for need in cls.requires), name
        create_model(name, dict(cls.quick_params))  # the quick settings are valid params
    assert [d["name"] for d in describe_models()] == list_models()


def test_importing_the_models_package_imports_no_model():
    code = "import sys, postloc.models; assert 'torch' not in sys.modules and 'sklearn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_majority_returns_training_frequencies(splits, tmp_path):
    model = create_model("majority").fit(
        splits["train"], classes=["syn-poi-00", "syn-poi-01", "syn-poi-02", "syn-poi-03", "syn-poi-04", "never-trained"]
    )
    proba = model.predict_proba(splits["test"])
    expected = splits["train"]["poi"].value_counts(normalize=True)
    assert proba.shape == (len(splits["test"]), 6)
    assert np.allclose(proba[0, :5], expected.reindex(model.classes_[:5]).to_numpy())
    assert proba[0, 5] == 0.0
    model.save(tmp_path / "maj")
    assert np.array_equal(load_model(tmp_path / "maj").predict_proba(splits["test"]), proba)


def test_tfidf_logreg_learns_and_round_trips_without_pickle(splits, tmp_path):
    model = create_model("tfidf-logreg").fit(splits["train"], splits["val"])
    assert model.C_ in model.config.c_grid  # chosen on validation
    proba = model.predict_proba(splits["test"])
    assert np.allclose(proba.sum(axis=1), 1.0)
    accuracy = (np.array(model.predict(splits["test"])) == splits["test"]["poi"].to_numpy()).mean()
    assert accuracy > splits["test"]["poi"].value_counts(normalize=True).max() + 0.15
    model.save(tmp_path / "lr")
    assert sorted(p.name for p in (tmp_path / "lr").iterdir()) == ["model.json", "vocab.json", "weights.safetensors"]
    assert np.allclose(load_model(tmp_path / "lr").predict_proba(splits["test"]), proba, atol=1e-12)


def test_tfidf_transform_matches_scikit_learn(splits):
    from sklearn.feature_extraction.text import TfidfVectorizer

    model = create_model("tfidf-logreg", {"C": 1.0}).fit(splits["train"])
    docs = model._docs(splits["test"])
    reference = TfidfVectorizer(analyzer=lambda d: d, vocabulary=model.vocabulary_, sublinear_tf=True)
    reference.fit(model._docs(splits["train"]))
    assert np.allclose(model.idf_, reference.idf_)
    assert np.allclose(model._transform(docs).toarray(), reference.transform(docs).toarray())


def test_tfidf_logreg_degenerate_data():
    one_class = pd.DataFrame({"text": ["a b", "c"], "hashtags": [["x"], []], "poi": ["p", "p"]})
    model = create_model("tfidf-logreg", {"min_df": 1}).fit(one_class)
    assert model.predict_proba(one_class).tolist() == [[1.0], [1.0]]
    two = pd.DataFrame({"text": ["a", "b", "a", "b"], "hashtags": [[]] * 4, "poi": ["p", "q", "p", "q"]})
    model = create_model("tfidf-logreg", {"min_df": 1, "C": 10.0}).fit(two)
    assert model.predict(two) == ["p", "q", "p", "q"]  # scikit-learn's binary case
    empty_tokens = pd.DataFrame({"text": ["", ""], "hashtags": [[], []], "poi": ["p", "q"]})
    assert np.allclose(create_model("tfidf-logreg").fit(empty_tokens).predict_proba(empty_tokens), 0.5)
