"""Points of interest: from labels when the posts carry them, else derived from coordinates.

The paper's POIs were Foursquare check-in places. Posts without labels (the Dresden Flickr
sample, any geotagged collection) get POIs by density clustering of their coordinates:

* ``hdbscan`` (default): finds dense places of different sizes and densities; in the Dresden
  sample it separates the Altstadt landmarks that DBSCAN merges into one 5,000-post blob.
* ``dbscan``: one distance ``eps_m``; fine when places are evenly spread.
* ``grid``: square cells of ``cell_m`` metres (or of ``cell_deg`` degrees of latitude and longitude);
  linear time, for tens of millions of posts.

Clustering runs on 3-D unit-sphere coordinates (scaled to km) with Euclidean distance: the
chord length grows monotonically with the great-circle distance, so density is measured
correctly everywhere on Earth, and k-d trees (much faster than haversine ball trees) apply.

HDBSCAN has two implementations of the same algorithm (docs/scale-prepare.md, "POI clustering
at scale"): scikit-learn's builds its minimum spanning tree with Prim's algorithm over all pairs,
O(n^2) time (about a minute of CPU for 100k points, hours for 1M); ``fast_hdbscan`` builds it
with a k-d tree Borůvka, about 4 s for 100k points and 1 min for 1M. Both give the same clusters
up to the order in which equal distances are merged, which scikit-learn itself does not fix (a
shuffled input moves as many points). ``hdbscan_engine="auto"`` takes scikit-learn below
:data:`FAST_HDBSCAN_FROM` points (fast there, and no numba import or first-use compilation)
and ``fast_hdbscan`` from there on.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np
import pandas as pd

EARTH_RADIUS_KM = 6371.0088
POI_METHODS = ("labels", "hdbscan", "dbscan", "grid")
HDBSCAN_ENGINES = ("auto", "sklearn", "fast")
# below this many points scikit-learn's O(n^2) HDBSCAN takes a few seconds, less than importing
# numba; above it fast_hdbscan's Borůvka wins (docs/scale-prepare.md); the embedded Dresden
# sample (17,879 points) stays on scikit-learn, so its prepared output is unchanged
FAST_HDBSCAN_FROM = 30_000


@dataclass(frozen=True)
class PoiConfig:
    method: str = "hdbscan"  # "auto" picks labels when present
    min_posts: int = 100  # paper: POIs with fewer than 100 posts dropped
    min_users: int = 3  # a "place" photographed by one or two people cannot be split user-disjointly
    min_samples: int = 10  # HDBSCAN/DBSCAN core density (posts within the neighbourhood)
    eps_m: float = 75.0  # DBSCAN neighbourhood radius
    cell_m: float = 250.0  # grid cell side
    cell_deg: float = 0.0  # grid cell side in degrees (> 0: used instead of cell_m, a plain lat/lon grid)
    hdbscan_engine: str = "auto"  # auto: scikit-learn below FAST_HDBSCAN_FROM points, else fast_hdbscan


def to_unit_xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Points on a sphere of Earth's radius, in km."""
    phi, lam = np.radians(lat), np.radians(lon)
    return EARTH_RADIUS_KM * np.c_[np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)]


def spherical_mean(lat: np.ndarray, lon: np.ndarray) -> tuple[float, float]:
    """Centre of a set of points: the normalised mean of their unit vectors (right across the antimeridian)."""
    v = to_unit_xyz(lat, lon).mean(axis=0)
    x, y, z = v / np.linalg.norm(v)
    return float(np.degrees(np.arcsin(z))), float(np.degrees(np.arctan2(y, x)))


def cluster_coordinates(lat: np.ndarray, lon: np.ndarray, config: PoiConfig) -> np.ndarray:
    """Cluster id per point (-1 = not in any place); ids are ordered by cluster size, largest first."""
    if len(lat) == 0:
        return np.zeros(0, dtype=np.int64)
    if config.method == "grid":
        labels = _grid_cells(lat, lon, config.cell_m, config.cell_deg)
    else:
        xyz = to_unit_xyz(lat, lon)
        if config.method == "hdbscan":
            if len(lat) < max(2, config.min_samples):
                return np.full(len(lat), -1, dtype=np.int64)
            labels = _hdbscan(xyz, config)
        elif config.method == "dbscan":
            from sklearn.cluster import DBSCAN

            labels = (
                DBSCAN(eps=config.eps_m / 1000.0, min_samples=config.min_samples, algorithm="kd_tree").fit(xyz).labels_
            )
        else:
            raise ValueError(f"unknown POI method {config.method!r}; use one of {', '.join(POI_METHODS)}")
    return _relabel_by_size(np.asarray(labels))


def hdbscan_engine(n_points: int, config: PoiConfig) -> str:
    """Which implementation clusters ``n_points`` points: ``"sklearn"`` or ``"fast"``.

    ``fast_hdbscan`` counts ``min_samples`` without the point itself and cannot express
    scikit-learn's ``min_samples=2`` (its 1 means a core distance of 0), so that setting stays
    on scikit-learn; so does everything when fast_hdbscan (a dependency) cannot be imported.
    """
    engine = config.hdbscan_engine
    if engine not in HDBSCAN_ENGINES:
        raise ValueError(f"unknown HDBSCAN engine {engine!r}; use one of {', '.join(HDBSCAN_ENGINES)}")
    if engine == "fast" and config.min_samples == 2:
        raise ValueError("hdbscan_engine='fast' cannot use min_samples=2; use 'sklearn' or another min_samples")
    if engine == "sklearn" or config.min_samples == 2 or (engine == "auto" and n_points < FAST_HDBSCAN_FROM):
        return "sklearn"
    if engine == "auto" and importlib.util.find_spec("fast_hdbscan") is None:
        return "sklearn"
    return "fast"


def _hdbscan(xyz: np.ndarray, config: PoiConfig) -> np.ndarray:
    if hdbscan_engine(len(xyz), config) == "fast":
        return _fast_hdbscan(xyz, config)
    from sklearn.cluster import HDBSCAN

    return np.asarray(
        HDBSCAN(
            min_cluster_size=max(2, config.min_posts),
            min_samples=config.min_samples,
            algorithm="kd_tree",
            copy=True,
        )
        .fit(xyz)
        .labels_
    )


def _fast_hdbscan(xyz: np.ndarray, config: PoiConfig) -> np.ndarray:
    """HDBSCAN with the settings scikit-learn's would use, through fast_hdbscan's k-d tree Borůvka.

    Three details keep its clusters those of scikit-learn (docs/scale-prepare.md):

    * ``min_samples - 1``: fast_hdbscan's core distance is to the k-th *other* point,
      scikit-learn's to the k-th point counting the point itself;
    * coordinates centred on their mean: fast_hdbscan computes in float32, whose step is about
      0.5 m at the Earth's radius (6,371 km) but millimetres within a city around the origin;
    * one numba thread: with more, its Borůvka picks among equally short edges in whatever order
      the threads finish, so the same input gave different clusters from run to run.
    """
    import numba
    from fast_hdbscan import HDBSCAN as FastHDBSCAN

    centred = xyz - xyz.mean(axis=0)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        model = FastHDBSCAN(min_cluster_size=max(2, config.min_posts), min_samples=max(1, config.min_samples - 1))
        return np.asarray(model.fit(centred).labels_, dtype=np.int64)
    finally:
        numba.set_num_threads(threads)


def _grid_cells(lat: np.ndarray, lon: np.ndarray, cell_m: float, cell_deg: float = 0.0) -> np.ndarray:
    """Equal-area-ish cells: latitude rows of ``cell_m``, longitude widths scaled by cos(latitude).

    With ``cell_deg`` > 0 the cells are a plain grid of that many degrees on both axes (what a
    user who asks for "0.01-degree cells" means; they narrow towards the poles).
    """
    if cell_deg > 0:
        row = np.floor(lat / cell_deg).astype(np.int64)
        col = np.floor((lon + 180.0) / cell_deg).astype(np.int64)
        _, labels = np.unique(np.c_[row, col], axis=0, return_inverse=True)
        return labels.reshape(-1)
    cell_deg = cell_m / 1000.0 / EARTH_RADIUS_KM * 180.0 / np.pi
    row = np.floor(lat / cell_deg).astype(np.int64)
    row_lat = np.radians((row + 0.5) * cell_deg)
    width = cell_deg / np.maximum(np.cos(row_lat), 1e-6)
    col = np.floor((lon + 180.0) / width).astype(np.int64)
    _, labels = np.unique(np.c_[row, col], axis=0, return_inverse=True)
    return labels.reshape(-1)


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    valid = labels >= 0
    out = np.full(len(labels), -1, dtype=np.int64)
    if not valid.any():
        return out
    ids, counts = np.unique(labels[valid], return_counts=True)
    order = ids[np.lexsort((ids, -counts))]
    rank = {old: new for new, old in enumerate(order)}
    out[valid] = [rank[v] for v in labels[valid]]
    return out


def poi_table(posts: pd.DataFrame, known_centres: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per POI: ``poi, lat, lon, name, posts, users``.

    Centres come from ``known_centres`` (a user's POI CSV, or the location an Instaloader
    folder was downloaded for) when given, else the spherical mean of the POI's posts.
    """
    rows = []
    for poi, group in posts.groupby("poi", sort=True):
        coords = group.dropna(subset=["lat", "lon"])
        lat = lon = float("nan")
        if len(coords):
            lat, lon = spherical_mean(coords["lat"].to_numpy(), coords["lon"].to_numpy())
        name = ""
        if "poi_name" in group and group["poi_name"].notna().any():
            name = str(group["poi_name"].dropna().mode().iloc[0])
        rows.append(
            {"poi": poi, "lat": lat, "lon": lon, "name": name, "posts": len(group), "users": group["user"].nunique()}
        )
    table = pd.DataFrame(rows, columns=["poi", "lat", "lon", "name", "posts", "users"])
    return apply_known_centres(table, known_centres)


def apply_known_centres(table: pd.DataFrame, known_centres: pd.DataFrame | None) -> pd.DataFrame:
    """Replace computed centres (and names) by those of a user's POI table where it has them."""
    if known_centres is not None and len(known_centres):
        known = known_centres.set_index("poi")
        for column in ("lat", "lon", "name"):
            if column in known:
                mapped = table["poi"].map(known[column])
                table[column] = mapped.where(mapped.notna(), table[column])
    return table


def name_from_hashtags(posts: pd.DataFrame, *, top: int = 2, min_share: float = 0.05) -> dict[str, str]:
    """A readable name for POIs that have none: their most distinctive hashtags, e.g. ``#zwinger #semperoper``.

    Derived POIs are only ids (``poi-003``), which mean nothing on a map. A tag is distinctive for
    a POI when its share there is much higher than overall (lift); tags on fewer than
    ``min_share`` of the POI's posts are ignored so one user's private tag cannot name a place.
    Pass training posts only, so that no test post shapes what a user sees.
    """
    # one row per (post, tag); prepared hashtags are already unique within a post
    rows = posts[["poi", "hashtags"]].explode("hashtags").dropna(subset=["hashtags"])
    if rows.empty:
        return {}
    per_poi = posts.groupby("poi").size()
    overall = rows.groupby("hashtags").size() / len(posts)
    counts = rows.groupby(["poi", "hashtags"]).size()
    share = counts / per_poi.reindex(counts.index.get_level_values("poi")).to_numpy()
    lift = share / overall.reindex(counts.index.get_level_values("hashtags")).to_numpy()
    names = {}
    for poi, group in lift[share >= min_share].groupby(level="poi"):
        best = group.droplevel("poi").sort_values(ascending=False, kind="stable").head(top)
        names[str(poi)] = " ".join(f"#{tag}" for tag in best.index)
    return names


def name_unnamed_by_coordinates(table: pd.DataFrame) -> pd.DataFrame:
    """A POI still without a name (no label name, no distinctive hashtag) is named by its centre,
    ``near 51.0532, 13.7348``: an empty name shows as a blank on the map and in every answer."""
    unnamed = table["name"].fillna("").astype(str).str.strip().eq("") & table["lat"].notna() & table["lon"].notna()
    table.loc[unnamed, "name"] = [
        f"near {lat:.4f}, {lon:.4f}" for lat, lon in table.loc[unnamed, ["lat", "lon"]].to_numpy()
    ]
    return table
