"""K user-disjoint, POI-stratified folds (postloc.data.folds)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from postloc.data.folds import (
    FoldConfig,
    assign_folds,
    fold_splits,
    read_folds,
    user_fold_table,
    user_keys,
    write_folds,
)


def _posts(seed: int = 0, n_pois: int = 4, users_per_poi: int = 12, heavy: int = 5) -> pd.DataFrame:
    """Users of 1-4 posts at one POI each, a few of them with 1-2 other POIs, plus ``heavy`` users
    of 40-80 posts at one POI, and posts without a user id."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_pois):
        for u in range(users_per_poi):
            for _ in range(int(rng.integers(1, 5))):
                rows.append({"user": f"u{p}-{u}", "poi": f"P{p}"})
            if u % 4 == 0:
                rows.append({"user": f"u{p}-{u}", "poi": f"P{(p + 1) % n_pois}"})
    for h in range(heavy):
        rows += [{"user": f"heavy{h}", "poi": f"P{h % n_pois}"}] * (40 + 10 * h)
    rows += [{"user": None, "poi": f"P{i % n_pois}"} for i in range(7)]
    posts = pd.DataFrame(rows)
    posts["id"] = [f"id{i}" for i in range(len(posts))]
    return posts.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def test_folds_are_user_disjoint_and_cover_every_post():
    posts = _posts()
    folds = assign_folds(posts, FoldConfig(k=5, seed=3))
    assert len(folds) == len(posts) and folds.notna().all()
    assert set(folds.unique()) == set(range(5))
    per_user = pd.DataFrame({"u": user_keys(posts), "f": folds}).groupby("u")["f"].nunique()
    assert (per_user == 1).all()  # each user in exactly one fold
    # posts without a user are users of their own, keyed by post id
    own = user_keys(posts)[posts["user"].isna()]
    assert own.is_unique and own.str.startswith("\0post:").all()
    # each post is a test post of exactly one fold, and train/val/test partition the posts
    tested = pd.Series(0, index=posts.index)
    for k in range(5):
        split = fold_splits(posts, folds, k, FoldConfig(k=5, seed=3))
        assert set(split.unique()) == {"train", "val", "test"}
        tested += split == "test"
        assert (split[folds == k] == "test").all() and (split[folds != k] != "test").all()
        users = user_keys(posts)
        assert not set(users[split == "val"]) & set(users[split == "train"])  # val is user-disjoint too
        share = (split == "val").sum() / (split != "test").sum()
        assert 0.05 < share < 0.25
    assert (tested == 1).all()


def test_every_poi_in_every_fold_and_heavy_users_spread():
    posts = _posts(heavy=5)
    folds = assign_folds(posts, FoldConfig(k=5))
    table = pd.crosstab(posts["poi"], folds)
    assert (table > 0).all().all()  # each POI has >= 5 users here, so each fold has it
    users = user_keys(posts)
    top = users.value_counts().index[:5]
    assert all(u.startswith("heavy") for u in top)
    assert len({int(folds[users == u].iloc[0]) for u in top}) == 5  # the 5 heaviest in 5 different folds
    # and light users reach every fold
    light = users.map(users.value_counts()) <= 5
    assert set(folds[light].unique()) == set(range(5))


def test_folds_are_seeded_and_deterministic():
    posts = _posts()
    a = assign_folds(posts, FoldConfig(k=4, seed=1))
    assert a.equals(assign_folds(posts, FoldConfig(k=4, seed=1)))
    shuffled = posts.sample(frac=1.0, random_state=9)
    assert assign_folds(shuffled, FoldConfig(k=4, seed=1)).reindex(posts.index).equals(a)  # row order is irrelevant
    assert not a.equals(assign_folds(posts, FoldConfig(k=4, seed=2)))


def test_known_users_keep_their_fold_and_new_users_are_placed(tmp_path):
    posts = _posts()
    config = FoldConfig(k=3, seed=0)
    folds = assign_folds(posts, config)
    write_folds(tmp_path / "folds.parquet", user_fold_table(posts, folds), config)
    known, stored = read_folds(tmp_path / "folds.parquet")
    assert stored == config and len(known) == user_keys(posts).nunique()
    # a variant: a third of the posts gone, new users added
    variant = pd.concat(
        [posts.iloc[::3], pd.DataFrame({"user": [f"new{i}" for i in range(30)], "poi": ["P1"] * 30})],
        ignore_index=True,
    )
    variant["id"] = variant["id"].fillna(pd.Series([f"v{i}" for i in range(len(variant))]))
    again = assign_folds(variant, config, known=known)
    users = user_keys(variant)
    old = users.isin(known.keys())
    assert (again[old] == users[old].map(known)).all()
    assert set(again[~old].unique()) == {0, 1, 2}  # new users spread over the folds


def test_bad_settings():
    with pytest.raises(ValueError):
        FoldConfig(k=1)
    with pytest.raises(ValueError):
        FoldConfig(val_fraction=0.0)
