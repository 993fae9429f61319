"""Same-user context: grouping by day and by user, the mixture rule, its fitted weights, and ``stack`` using it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from postloc.errors import PostlocError
from postloc.io.model_files import SEAL_KEY, manifest_digest
from postloc.models import create_model, load_model
from postloc.models.user_context import (
    Evidence,
    apply_context,
    context_evidence,
    context_groups,
    fit_rhos,
    neighbour_mean,
    smoothed_prior,
)

QUICK = {"c_grid": (1.0,), "inner_folds": 3, "max_iter": 300}
PLACES = ["poi-a", "poi-b", "poi-c", "poi-d"]


def test_groups_are_one_user_on_one_day():
    posts = pd.DataFrame(
        {
            "user": ["u", "u", "u", "v", None, None, "v"],
            "created": [
                "2020-01-01T09:00:00",
                "2020-01-01T17:30:00",
                "2020-01-02T09:00:00",  # the same user a day later: no neighbour
                "2020-01-01T09:00:00",
                "2020-01-01T09:00:00",  # no user: never a neighbour, not even of another post without one
                "2020-01-01T09:00:00",
                None,  # no date
            ],
        }
    )
    groups = context_groups(posts, "day")
    assert groups is not None
    assert groups[0] == groups[1] >= 0
    assert (groups[2:] == -1).all()
    assert context_groups(posts, "none") is None
    assert context_groups(posts.drop(columns="created"), "day") is None
    assert context_groups(posts.iloc[[0, 2, 3]], "day") is None  # nobody has a neighbour
    # datetimes count by their calendar day too
    stamps = posts.assign(created=pd.to_datetime(posts["created"]))
    assert np.array_equal(context_groups(stamps, "day"), groups)
    with pytest.raises(PostlocError, match="context must be one of"):
        create_model("stack", {"context": "week"})


def test_neighbour_mean_leaves_the_post_itself_out():
    proba = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8]])
    mean = neighbour_mean(proba, np.array([0, 0, 0, -1]))
    assert np.allclose(mean[0], [0.25, 0.75])
    assert np.allclose(mean[2], [0.5, 0.5])
    assert np.array_equal(mean[3], [0.0, 0.0])


def test_the_rule_moves_a_vague_post_towards_its_neighbours_place_and_leaves_loners_alone():
    prior = np.full(4, 0.25)
    vague = [0.25, 0.25, 0.25, 0.25]
    sure_c = [0.02, 0.02, 0.94, 0.02]
    proba = np.array([vague, sure_c, vague])
    groups = np.array([0, 0, -1])
    day = [Evidence(neighbour_mean(proba, groups), groups >= 0)]
    out = apply_context(proba, day, (0.5,), prior)
    assert out[0].argmax() == 2 and out[0, 2] > 0.5
    assert np.allclose(out.sum(axis=1), 1.0)
    assert np.array_equal(out[2], proba[2])  # no neighbour: exactly as it was
    # the rule as the docstring writes it for one neighbour
    expected = proba[0] * ((1 - 0.5) + 0.5 * proba[1] / prior)
    assert np.allclose(out[0], expected / expected.sum())
    assert apply_context(proba, day, (0.0,), prior) is proba
    assert apply_context(proba, [None], (0.5,), prior) is proba


def _bursts(n_days: int, same_place: bool, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out-of-fold-like probabilities of 3-post days: one post per day names its place, the others are vague."""
    rng = np.random.default_rng(seed)
    rows, labels, groups = [], [], []
    for day in range(n_days):
        place = int(rng.integers(4))
        for i in range(3):
            y = place if same_place else int(rng.integers(4))
            p = np.full(4, 0.25)
            if i == 0:
                p = np.full(4, 0.05)
                p[y] = 0.85
            rows.append(p)
            labels.append(y)
            groups.append(day)
    return np.array(rows), np.array(labels), np.array(groups)


def test_the_weight_is_large_when_days_stay_at_one_place_and_zero_when_they_do_not():
    proba, y, groups = _bursts(200, same_place=True, seed=0)
    prior = smoothed_prior(y, np.ones(len(y)), 4)
    day = [Evidence(neighbour_mean(proba, groups), groups >= 0)]
    assert fit_rhos(proba, day, y, np.ones(len(y)), prior)[0] > 0.5
    proba, y, groups = _bursts(200, same_place=False, seed=1)
    day = [Evidence(neighbour_mean(proba, groups), groups >= 0)]
    assert fit_rhos(proba, day, y, np.ones(len(y)), prior)[0] < 0.05
    assert fit_rhos(proba, [None], y, np.ones(len(y)), prior) == (0.0,)


def _posts(n_users: int, seed: int, *, days: int, per_day: int, place_each_day: bool) -> pd.DataFrame:
    """Users' posts, ``per_day`` a day over ``days`` days at one place a day (or one place a user).

    The first post of a day names the place when a user posts several a day; a user who posts once
    a day names it on the first day only. Every other post says only the city.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        place = "" if place_each_day else PLACES[int(rng.integers(len(PLACES)))]
        for day in range(days):
            if place_each_day:
                place = PLACES[int(rng.integers(len(PLACES)))]
            for i in range(per_day):
                named = i == 0 if per_day > 1 else day == 0
                rows.append(
                    {
                        "id": f"{u}-{day}-{i}",
                        "user": f"user{u}",
                        "created": f"2021-05-0{day + 1}T1{i}:00:00",
                        "text": "",
                        "hashtags": [place.replace("-", ""), "city"] if named else ["city"],
                        "poi": place,
                    }
                )
    return pd.DataFrame(rows)


def _timeline_posts(n_users: int, seed: int) -> pd.DataFrame:
    """Users who post 3 photos a day at one place; one of the three names the place, two say only the city."""
    return _posts(n_users, seed, days=2, per_day=3, place_each_day=True)


def test_stack_reads_same_day_neighbours_saves_the_weight_and_is_unchanged_without_them(tmp_path):
    train, test = _timeline_posts(60, seed=3), _timeline_posts(30, seed=4)
    model = create_model("stack", {**QUICK, "context": "day"}).fit(train)
    alone = create_model("stack", {**QUICK, "context": "none"}).fit(train)
    assert model.context_rhos_[0] > 0.3 and alone.context_rhos_ == ()
    assert model.reads_neighbours and not alone.reads_neighbours
    truth = test["poi"].to_numpy()
    acc = (np.array(model.predict(test)) == truth).mean()
    acc_alone = (np.array(alone.predict(test)) == truth).mean()
    assert acc_alone < 0.6 and acc > 0.95  # the city-only posts are placed by the post that names the place
    # each post on its own (no user, or one post per frame): the same numbers as without context
    assert np.allclose(model.predict_proba(test.drop(columns="user")), alone.predict_proba(test), atol=1e-12)
    model.save(tmp_path / "stack")
    loaded = load_model(tmp_path / "stack")
    assert loaded.context_rhos_ == model.context_rhos_
    assert np.allclose(loaded.predict_proba(test), model.predict_proba(test), atol=1e-12)
    # a stack saved before the context rule (no context keys) loads and predicts post by post
    manifest_path = tmp_path / "stack" / "model.json"
    manifest = json.loads(manifest_path.read_text())
    for key in ("context_rhos", "context_prior"):
        manifest.pop(key)
    manifest[SEAL_KEY] = manifest_digest(manifest)  # as that older postloc sealed it
    manifest_path.write_text(json.dumps(manifest))
    old = load_model(tmp_path / "stack")
    assert old.context_rhos_ == (0.0,) and not old.reads_neighbours
    assert np.allclose(old.predict_proba(test), alone.predict_proba(test), atol=1e-12)
    manifest["context_rho"], manifest["context_prior"] = 0.5, [0.5]  # a prior of the wrong length
    manifest[SEAL_KEY] = manifest_digest(manifest)
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(PostlocError, match="context weights or prior"):
        load_model(tmp_path / "stack")
    # a same-day stack of the first context release wrote one "context_rho"
    manifest["context_prior"] = model.context_prior_.tolist()
    manifest[SEAL_KEY] = manifest_digest(manifest)
    manifest_path.write_text(json.dumps(manifest))
    first = load_model(tmp_path / "stack")
    assert first.context_rhos_ == (0.5,) and first.reads_neighbours


def test_the_default_reads_both_kinds_and_a_weightless_kind_changes_nothing():
    assert create_model("stack").config.context == "user"
    train, test = _timeline_posts(60, seed=3), _timeline_posts(30, seed=4)
    both = create_model("stack", QUICK).fit(train)
    day = create_model("stack", {**QUICK, "context": "day"}).fit(train)
    assert len(both.context_rhos_) == 2 and both.context_rhos_[0] > 0.3
    # the places of a user's two days are drawn independently here: the other day says little
    assert both.context_rhos_[1] < 0.1
    truth = test["poi"].to_numpy()
    assert (np.array(both.predict(test)) == truth).mean() >= (np.array(day.predict(test)) == truth).mean() - 0.02


def test_predictor_passes_user_and_date_so_files_and_the_api_get_the_context(tmp_path):
    from postloc.inference.predictor import load

    train, test = _timeline_posts(60, seed=3), _timeline_posts(10, seed=5)
    create_model("stack", QUICK).fit(train).save(tmp_path / "stack")
    predictor = load(tmp_path / "stack")
    records = test.drop(columns="poi").to_dict(orient="records")
    # a batch smaller than a user's day: the model still sees the whole frame, so no day is cut in two
    with_context = predictor.predict_proba(records, batch_size=2)
    assert np.allclose(with_context, predictor.predict_proba(records), atol=1e-12)
    classes = np.array(predictor.classes)
    assert (classes[with_context.argmax(axis=1)] == test["poi"].to_numpy()).mean() > 0.95
    anonymous = [{k: v for k, v in r.items() if k != "user"} for r in records]
    one_by_one = np.vstack([predictor.predict_proba([r]) for r in records])
    assert np.allclose(predictor.predict_proba(anonymous), one_by_one, atol=1e-12)
    assert not np.allclose(with_context, one_by_one)


def test_other_days_are_a_second_kind_of_neighbour_with_its_own_mean():
    proba = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8], [0.3, 0.7]])
    posts = pd.DataFrame(
        {
            "user": ["u", "u", "u", "u", "w"],
            "created": ["2020-01-01T09:00", "2020-01-01T10:00", "2020-01-02T09:00", None, "2020-01-01T09:00"],
        }
    )
    day, other = context_evidence(proba, posts, "user")
    assert day is not None and other is not None
    assert day.has.tolist() == [True, True, False, False, False]
    assert other.has.tolist() == [True, True, True, True, False]  # w posted once: no neighbour at all
    assert np.allclose(other.mean[0], proba[[2, 3]].mean(axis=0))  # not its own day's posts
    assert np.allclose(other.mean[2], proba[[0, 1, 3]].mean(axis=0))
    assert np.allclose(other.mean[3], proba[[0, 1, 2]].mean(axis=0))  # undated: every other post of the user
    assert len(context_evidence(proba, posts, "day")) == 1
    assert context_evidence(proba, posts.drop(columns="user"), "user") == [None, None]


def _residents(n_users: int, seed: int) -> pd.DataFrame:
    """Users who stay at one place on every day: one post a day, named on one day out of three."""
    return _posts(n_users, seed, days=3, per_day=1, place_each_day=False)


def test_user_context_places_a_post_by_the_same_users_other_days_and_day_context_cannot(tmp_path):
    train, test = _residents(80, seed=6), _residents(40, seed=7)
    day = create_model("stack", {**QUICK, "context": "day"}).fit(train)
    user = create_model("stack", QUICK).fit(train)
    assert day.context_rhos_ == (0.0,) and not day.reads_neighbours  # one post a day: no same-day neighbour
    assert user.context_rhos_[0] == 0.0 and user.context_rhos_[1] > 0.3
    truth = test["poi"].to_numpy()
    assert (np.array(day.predict(test)) == truth).mean() < 0.6
    assert (np.array(user.predict(test)) == truth).mean() > 0.95
    user.save(tmp_path / "stack")
    loaded = load_model(tmp_path / "stack")
    assert loaded.context_rhos_ == user.context_rhos_
    assert np.allclose(loaded.predict_proba(test), user.predict_proba(test), atol=1e-12)


def test_weights_of_places_that_do_not_follow_the_user_stay_at_zero():
    # every post of a user at an independent place: neither kind of neighbour says anything
    rng = np.random.default_rng(8)
    n = 600
    y = rng.integers(0, 4, n)
    proba = np.full((n, 4), 0.1)
    proba[np.arange(n), y] = 0.7
    posts = pd.DataFrame(
        {"user": [f"u{i // 6}" for i in range(n)], "created": [f"2020-01-0{1 + (i % 6) // 2}" for i in range(n)]}
    )
    evidence = context_evidence(proba, posts, "user")
    rhos = fit_rhos(proba, evidence, y, np.ones(n), np.full(4, 0.25))
    assert len(rhos) == 2 and max(rhos) < 0.05
