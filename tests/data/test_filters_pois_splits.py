"""The cleaning pieces on constructed cases with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from postloc.data.filters import count_hashtags, duplicate_key, frequent_hashtags, place_key
from postloc.data.pois import PoiConfig, cluster_coordinates, poi_table, spherical_mean
from postloc.data.splits import SplitConfig, user_disjoint_split


def test_hashtag_threshold_is_inclusive():
    lists = [["a", "b", "a"]] * 49 + [["a", "c"]]  # 'a' in 50 posts (repeats within a post count once)
    counts = count_hashtags(lists)
    assert counts["a"] == 50 and counts["b"] == 49 and counts["c"] == 1
    assert frequent_hashtags(counts, 50) == {"a"}
    assert frequent_hashtags(counts, 49) == {"a", "b"}
    assert frequent_hashtags(counts, 0) == {"a", "b", "c"}


def test_duplicate_key():
    same = duplicate_key("u", "Hello World", ["x"], "poi:1")
    assert same == duplicate_key("u", "hello world", ["x"], "poi:1")
    assert same != duplicate_key("v", "hello world", ["x"], "poi:1")
    assert same != duplicate_key("u", "hello world", ["x"], "poi:2")
    assert duplicate_key("u", "", [], "poi:1") is None  # nothing to compare
    assert duplicate_key(None, "hi", [], "poi:1") is None
    assert place_key(None, 51.123456, 13.5) == "51.1235,13.5000"
    assert place_key("p", 1.0, 2.0) == "poi:p"


def _blobs(centres, sizes, spread_m, seed=0):
    rng = np.random.default_rng(seed)
    lat, lon = [], []
    for (clat, clon), n in zip(centres, sizes, strict=True):
        dlat = rng.normal(0, spread_m / 111_000, n)
        dlon = rng.normal(0, spread_m / (111_000 * np.cos(np.radians(clat))), n)
        lat.append(clat + dlat)
        lon.append(clon + dlon)
    return np.concatenate(lat), np.concatenate(lon)


CENTRES = [(51.0526, 13.7415), (51.0540, 13.7350), (51.0600, 13.7600)]  # ~450 m and ~1.5 km apart


@pytest.mark.parametrize("method", ["hdbscan", "dbscan", "grid"])
def test_clusters_recover_planted_places(method):
    sizes = [300, 200, 120]
    lat, lon = _blobs(CENTRES, sizes, spread_m=20)
    rng = np.random.default_rng(1)  # sparse background noise over ~3 km
    noise_lat = 51.05 + rng.uniform(-0.015, 0.015, 60)
    noise_lon = 13.74 + rng.uniform(-0.025, 0.025, 60)
    config = PoiConfig(method=method, min_posts=100, min_samples=10, eps_m=40, cell_m=250)
    labels = cluster_coordinates(np.r_[lat, noise_lat], np.r_[lon, noise_lon], config)
    planted = labels[: sum(sizes)]
    truth = np.repeat([0, 1, 2], sizes)
    if method == "grid":
        # a cell boundary may cut a blob; the biggest cell of each blob must still hold most of it
        for k in range(3):
            values, counts = np.unique(planted[truth == k], return_counts=True)
            assert counts.max() / sizes[k] > 0.5
        return
    for k in range(3):
        values, counts = np.unique(planted[truth == k], return_counts=True)
        assert values[np.argmax(counts)] == k  # ids are ordered by size
        assert counts.max() / sizes[k] > 0.9
    assert len(set(labels[labels >= 0])) == 3
    assert (labels[sum(sizes) :] == -1).mean() > 0.8  # background is not a place


def test_spherical_mean_across_antimeridian():
    lat, lon = spherical_mean(np.array([10.0, 10.0]), np.array([179.5, -179.5]))
    assert lat == pytest.approx(10.0, abs=0.01)
    assert abs(lon) == pytest.approx(180.0, abs=0.01)


def test_poi_table_prefers_known_centres():
    posts = pd.DataFrame(
        {"poi": ["a", "a", "b"], "lat": [1.0, 3.0, 5.0], "lon": [1.0, 1.0, 5.0], "user": ["u", "v", "u"]}
    )
    table = poi_table(posts, pd.DataFrame({"poi": ["b"], "lat": [6.0], "lon": [7.0], "name": ["Bee"]}))
    a, b = table.set_index("poi").loc["a"], table.set_index("poi").loc["b"]
    assert a["lat"] == pytest.approx(2.0, abs=1e-3) and a["posts"] == 2 and a["users"] == 2
    assert (b["lat"], b["lon"], b["name"]) == (6.0, 7.0, "Bee")


def test_splits_are_user_disjoint_stratified_and_seeded():
    rng = np.random.default_rng(0)
    n = 5000
    users = pd.Series(rng.zipf(1.6, n).clip(max=400).astype(str))
    pois = pd.Series(rng.integers(0, 8, n).astype(str))
    config = SplitConfig(train=0.7, val=0.1, test=0.2, seed=3)
    split = user_disjoint_split(users, pois, config)
    per_user = pd.DataFrame({"user": users, "split": split}).groupby("user")["split"].nunique()
    assert (per_user == 1).all()  # no user in two splits
    shares = split.value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.7, abs=0.05)
    assert shares["test"] == pytest.approx(0.2, abs=0.05)
    for _, group in pd.DataFrame({"poi": pois, "split": split}).groupby("poi"):
        assert set(group["split"]) == {"train", "val", "test"}
    assert split.equals(user_disjoint_split(users, pois, config))
    assert not split.equals(user_disjoint_split(users, pois, SplitConfig(seed=4)))


def test_splits_without_users_and_zero_share():
    pois = pd.Series(["a"] * 10)
    split = user_disjoint_split(pd.Series([None] * 10), pois, SplitConfig(train=0.5, val=0.0, test=0.5))
    assert set(split) == {"train", "test"} and (split == "train").sum() == 5


def test_grid_cells_in_degrees_are_a_plain_lat_lon_grid():
    from postloc.data.pois import PoiConfig, cluster_coordinates

    lat = np.array([51.001, 51.009, 51.011, 51.019, 51.001])
    lon = np.array([13.001, 13.009, 13.001, 13.009, 13.011])
    labels = cluster_coordinates(lat, lon, PoiConfig(method="grid", cell_deg=0.01))
    # cells: (51.00, 13.00) holds posts 0 and 1; (51.01, 13.00) posts 2 and 3; (51.00, 13.01) post 4
    assert labels[0] == labels[1] and labels[2] == labels[3]
    assert len({labels[0], labels[2], labels[4]}) == 3


def test_a_poi_with_no_name_is_named_by_its_centre():
    from postloc.data.pois import name_unnamed_by_coordinates

    table = pd.DataFrame(
        {
            "poi": ["a", "b", "c"],
            "lat": [51.05322, 40.0, np.nan],
            "lon": [13.73477, -74.0, np.nan],
            "name": ["", "Zoo", None],
        }
    )
    named = name_unnamed_by_coordinates(table)
    assert named["name"].tolist()[:2] == ["near 51.0532, 13.7348", "Zoo"]
    assert pd.isna(named["name"].iloc[2])  # no centre, nothing to name it by: left as it was
