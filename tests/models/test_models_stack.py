"""``stack``: user weights, the learners it picks, the out-of-fold combiner, save/load without pickle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, make_synthetic
from postloc.errors import PostlocError
from postloc.models import create_model, load_model
from postloc.models.stack.combiner import combine, fit_combiner
from postloc.models.user_weights import user_sample_weights

QUICK = {"c_grid": (1.0,), "inner_folds": 2, "max_iter": 300}


@pytest.fixture(scope="module")
def splits():
    data = make_synthetic(SyntheticFeaturesConfig(n_pois=5, n_posts=500, seed=2, text_signal=0.3, tag_signal=0.5))
    return {s: data.posts[data.posts["split"] == s].reset_index(drop=True) for s in ("train", "val", "test")}


def test_user_weights_interpolate_between_posts_and_users():
    posts = pd.DataFrame({"user": ["a", "a", "a", "a", "b", None, None]})
    assert np.array_equal(user_sample_weights(posts, 0.0), np.ones(7))
    users_alike = user_sample_weights(posts, 1.0)
    assert users_alike.mean() == pytest.approx(1.0)
    # every user (each post without a user id is a user of its own) carries the same total weight
    totals = [users_alike[:4].sum(), users_alike[4], users_alike[5], users_alike[6]]
    assert np.allclose(totals, totals[0])
    half = user_sample_weights(posts, 0.5)
    assert half[0] / half[4] == pytest.approx(0.5)  # 1/sqrt(4) against 1/sqrt(1)
    assert np.array_equal(user_sample_weights(posts.drop(columns="user"), 0.5), np.ones(7))


def test_combiner_trusts_the_informative_learner():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    informative = np.full((400, 4), 0.1)
    informative[np.arange(400), y] = 0.7
    noise = rng.dirichlet(np.ones(4), 400)
    logs = [np.log(informative), np.log(noise)]
    weights = fit_combiner(logs, y, np.ones(400))
    assert weights[0] > 1.0 and weights[1] < 0.1
    proba = combine(logs, weights)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert (proba.argmax(axis=1) == y).mean() == 1.0


def test_stack_learns_round_trips_and_uses_every_modality(splits, tmp_path):
    settings = {**QUICK, "c_grid": (0.3, 3.0), "char_ngrams": (3, 3)}
    model = create_model("stack", settings).fit(splits["train"], splits["val"])
    assert [learner.kind for learner in model.learners_] == ["words", "chars", "image"]
    assert all(learner.C in (0.3, 3.0) for learner in model.learners_)  # chosen out of fold
    on_val = create_model("stack", {**settings, "c_selection": "val", "learners": ["words"]})
    assert on_val.fit(splits["train"], splits["val"]).learners_[0].C in (0.3, 3.0)
    assert set(model.learner_weights()) == {"words", "chars", "image"}
    proba = model.predict_proba(splits["test"])
    assert np.allclose(proba.sum(axis=1), 1.0)
    accuracy = (np.array(model.predict(splits["test"])) == splits["test"]["poi"].to_numpy()).mean()
    assert accuracy > splits["test"]["poi"].value_counts(normalize=True).max() + 0.15
    model.save(tmp_path / "stack")
    assert sorted(p.name for p in (tmp_path / "stack").iterdir()) == [
        "model.json",
        "vocabularies.json",
        "weights.safetensors",
    ]
    assert np.allclose(load_model(tmp_path / "stack").predict_proba(splits["test"]), proba, atol=1e-12)


def test_stack_leaves_out_learners_without_input(splits):
    tags_only = splits["train"].assign(text="", image_vector=None)
    model = create_model("stack", QUICK).fit(tags_only)
    assert [learner.kind for learner in model.learners_] == ["words"]  # chars need captions, image photos
    assert model.learner_weights()["words"] > 0  # one learner: its weight is a temperature
    with pytest.raises(PostlocError, match="none of the inputs"):
        create_model("stack", {**QUICK, "learners": ["image"]}).fit(tags_only)


def test_stack_user_weights_move_the_prior_away_from_a_heavy_user():
    # one user posts 90 times at "p" with the only tag "city"; nine users post once each at "q" with it
    posts = pd.DataFrame(
        {
            "text": [""] * 99,
            "hashtags": [["city"]] * 99,
            "poi": ["p"] * 90 + ["q"] * 9,
            "user": ["heavy"] * 90 + [f"u{i}" for i in range(9)],
        }
    )
    by_posts = create_model("stack", {**QUICK, "min_df": 1, "user_weight_power": 0.0, "inner_folds": 0}).fit(posts)
    by_users = create_model("stack", {**QUICK, "min_df": 1, "user_weight_power": 1.0, "inner_folds": 0}).fit(posts)
    assert by_posts.predict(posts.head(1)) == ["p"]
    assert by_users.predict(posts.head(1)) == ["q"]


def test_stack_degenerate_data_and_bad_settings():
    one_class = pd.DataFrame({"text": ["a b", "c"], "hashtags": [["x"], []], "poi": ["p", "p"]})
    assert create_model("stack", {"min_df": 1}).fit(one_class).predict_proba(one_class).tolist() == [[1.0], [1.0]]
    two = pd.DataFrame({"text": ["", ""] * 3, "hashtags": [["a"], ["b"]] * 3, "poi": ["p", "q"] * 3})
    assert create_model("stack", {"min_df": 1, "c_grid": (10.0,)}).fit(two).predict(two) == ["p", "q"] * 3
    bad_settings = (
        {"learners": ["words", "gps"]},
        {"char_ngrams": (5, 2)},
        {"c_grid": (0.0,)},
        {"user_weight_power": 3},
        {"c_selection": "test"},
    )
    for bad in bad_settings:
        with pytest.raises(PostlocError):
            create_model("stack", bad)


def test_stack_refits_on_the_validation_users():
    train = pd.DataFrame(
        {"text": [""] * 6, "hashtags": [["a"], ["b"]] * 3, "poi": ["p", "q"] * 3, "user": list("uvwxyz")}
    )
    val = pd.DataFrame({"text": [""] * 3, "hashtags": [["c"]] * 3, "poi": ["r"] * 3, "user": ["s", "t", "s"]})
    classes = ["p", "q", "r"]
    post = pd.DataFrame({"text": [""], "hashtags": [["c"]]})
    settings = {"min_df": 1, "c_grid": (10.0,), "inner_folds": 0}
    assert create_model("stack", settings).fit(train, val, classes=classes).predict(post) == ["r"]
    alone = create_model("stack", {**settings, "refit_on_val": False}).fit(train, val, classes=classes)
    assert alone.predict(post) != ["r"]


def test_importing_stack_imports_neither_torch_nor_scikit_learn():
    """The package promises a light import (its docstring): torch only where it writes or fits, in a function."""
    import subprocess
    import sys

    code = "import sys, postloc.models.stack; print(sorted({'torch', 'sklearn'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
