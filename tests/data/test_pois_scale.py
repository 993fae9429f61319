"""HDBSCAN POIs at scale (issue 27, part 4): fast_hdbscan's Borůvka must give scikit-learn's clusters.

scikit-learn's HDBSCAN builds its spanning tree in O(n^2) (hours for 1M posts); ``fast_hdbscan``
builds it with a k-d tree. These tests pin the three details that make the two agree (the
``min_samples`` offset, float32 near the origin, one numba thread for repeatable runs) and the
rule that picks one (``hdbscan_engine``). Timings are in benchmarks/bench_pois.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from postloc.data import pois
from postloc.data.pois import FAST_HDBSCAN_FROM, PoiConfig, cluster_coordinates, hdbscan_engine

M_PER_DEG = 111_195.0


def _city(seed: int = 0, n_places: int = 12, noise: int = 400, lat0: float = 51.05, lon0: float = 13.74):
    """Places of 60-600 posts, 10-120 m wide, over ~4 km, plus uniform noise: continuous coordinates (no ties)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(60, 600, n_places)
    centres = rng.uniform(-2000, 2000, (n_places, 2))
    spread = rng.uniform(10, 120, n_places)
    xy = np.concatenate([c + rng.normal(0, s, (k, 2)) for c, s, k in zip(centres, spread, sizes, strict=True)])
    xy = np.concatenate([xy, rng.uniform(-2500, 2500, (noise, 2))])
    lat = lat0 + xy[:, 1] / M_PER_DEG
    lon = lon0 + xy[:, 0] / (M_PER_DEG * np.cos(np.radians(lat0)))
    return lat, lon


def _both(lat, lon, **settings):
    sk = cluster_coordinates(lat, lon, PoiConfig(hdbscan_engine="sklearn", **settings))
    fast = cluster_coordinates(lat, lon, PoiConfig(hdbscan_engine="fast", **settings))
    return sk, fast


def _moved(ref: np.ndarray, new: np.ndarray) -> int:
    """Points whose cluster differs between two partitions, clusters matched one to one (noise to noise)."""
    from scipy.optimize import linear_sum_assignment

    table = np.zeros((ref.max() + 2, new.max() + 2), dtype=np.int64)
    np.add.at(table, (ref + 1, new + 1), 1)
    clusters = table[1:, 1:]
    rows, cols = linear_sum_assignment(-clusters)
    return int(len(ref) - table[0, 0] - clusters[rows, cols].sum())


def test_fast_engine_gives_sklearns_clusters_without_ties():
    """min_samples=1: every core distance is 0, the edges are plain distances, all different, so the
    spanning tree is unique: the same id for every point."""
    lat, lon = _city()
    sk, fast = _both(lat, lon, min_posts=50, min_samples=1)
    assert sk.max() >= 5  # a real partition, not all noise
    assert np.array_equal(sk, fast)


@pytest.mark.parametrize("min_samples", [3, 10])
def test_fast_engine_gives_sklearns_clusters_up_to_ties(min_samples):
    """min_samples > 1: every edge from a point to a neighbour inside its core distance weighs that
    core distance, so equal edges abound and HDBSCAN's result depends on the order it merges
    them in. scikit-learn itself moves 0-5 of these 3,954 points when the input is shuffled;
    fast_hdbscan moves 2-4."""
    lat, lon = _city()
    sk, fast = _both(lat, lon, min_posts=50, min_samples=min_samples)
    assert sk.max() == fast.max() >= 5
    assert _moved(sk, fast) <= 5
    shuffle = np.random.default_rng(0).permutation(len(lat))
    shuffled = cluster_coordinates(
        lat[shuffle], lon[shuffle], PoiConfig(min_posts=50, min_samples=min_samples, hdbscan_engine="sklearn")
    )
    assert _moved(sk, shuffled[np.argsort(shuffle)]) > 0  # the tie order is scikit-learn's too


def test_fast_engine_with_repeated_coordinates():
    """Geotagged posts repeat coordinates (a venue's location tag): core distances of 0, many equal edges."""
    lat, lon = _city(seed=1)
    rng = np.random.default_rng(2)
    venues = rng.integers(0, len(lat), 30)
    copies = rng.choice(venues, 1500)
    lat, lon = np.r_[lat, lat[copies]], np.r_[lon, lon[copies]]
    sk, fast = _both(lat, lon, min_posts=50, min_samples=10)
    assert sk.max() == fast.max() >= 5
    assert _moved(sk, fast) <= 0.002 * len(lat)


def test_fast_engine_far_from_the_origin_of_its_float32():
    """Two cities on opposite sides of the Earth: centring cannot bring both near the origin, the
    float32 step is then ~0.5 m, still far below the places' 15-40 m, so the clusters are kept."""
    a = _city(seed=3, n_places=4, noise=100)
    b = _city(seed=4, n_places=4, noise=100, lat0=-33.87, lon0=151.21)
    lat, lon = np.r_[a[0], b[0]], np.r_[a[1], b[1]]
    sk, fast = _both(lat, lon, min_posts=50, min_samples=10)
    assert sk.max() == fast.max() >= 5
    assert _moved(sk, fast) <= 0.002 * len(lat)


def test_fast_engine_repeats_itself_and_keeps_numba_threads():
    """With 2+ numba threads fast_hdbscan's labels changed between runs; it runs on one and restores the setting."""
    import numba

    lat, lon = _city(seed=5)
    config = PoiConfig(hdbscan_engine="fast", min_posts=50)
    before = numba.get_num_threads()
    runs = [cluster_coordinates(lat, lon, config) for _ in range(2)]
    assert np.array_equal(runs[0], runs[1])
    assert numba.get_num_threads() == before


def test_engine_choice():
    auto = PoiConfig()
    assert hdbscan_engine(FAST_HDBSCAN_FROM - 1, auto) == "sklearn"  # Dresden's 17,879 points stay as they were
    assert hdbscan_engine(FAST_HDBSCAN_FROM, auto) == "fast"
    assert hdbscan_engine(10**6, PoiConfig(min_samples=2)) == "sklearn"  # fast_hdbscan cannot express it
    assert hdbscan_engine(10, PoiConfig(hdbscan_engine="fast")) == "fast"
    assert hdbscan_engine(10**6, PoiConfig(hdbscan_engine="sklearn")) == "sklearn"
    with pytest.raises(ValueError, match="min_samples=2"):
        hdbscan_engine(10, PoiConfig(hdbscan_engine="fast", min_samples=2))
    with pytest.raises(ValueError, match="unknown HDBSCAN engine 'gpu'"):
        hdbscan_engine(10, PoiConfig(hdbscan_engine="gpu"))


def test_auto_engine_clusters_large_inputs_with_fast_hdbscan(monkeypatch):
    """``cluster_coordinates`` (both prepare engines call it) follows the choice."""
    lat, lon = _city(seed=6)
    calls = []
    real = pois._fast_hdbscan
    monkeypatch.setattr(pois, "_fast_hdbscan", lambda xyz, config: calls.append(len(xyz)) or real(xyz, config))
    cluster_coordinates(lat, lon, PoiConfig(min_posts=50))
    assert calls == []
    monkeypatch.setattr(pois, "FAST_HDBSCAN_FROM", len(lat))
    labels = cluster_coordinates(lat, lon, PoiConfig(min_posts=50))
    assert calls == [len(lat)] and labels.max() >= 5
