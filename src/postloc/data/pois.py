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
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
    merge_m: float = 300.0  # labelled POIs whose names are near-duplicates merge when their centres are this close


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


def name_unnamed_by_coordinates(table: pd.DataFrame) -> pd.DataFrame:
    """A POI still without a name (no label name, no distinctive hashtag) is named by its centre,
    ``near 51.0532, 13.7348``: an empty name shows as a blank on the map and in every answer."""
    unnamed = table["name"].fillna("").astype(str).str.strip().eq("") & table["lat"].notna() & table["lon"].notna()
    table.loc[unnamed, "name"] = [
        f"near {lat:.4f}, {lon:.4f}" for lat, lon in table.loc[unnamed, ["lat", "lon"]].to_numpy()
    ]
    return table


def name_clusters(
    counts: pd.DataFrame,
    per_poi: Mapping[str, int],
    n_posts: int,
    *,
    min_posts: int = 3,
    min_share: float = 0.05,
    max_spread: float = 0.5,
) -> dict[str, str]:
    """A clustered POI's name: the hashtag most specific to it, ``#brightonbeach``; POIs with none are left out.

    ``counts`` holds ``poi, tag, posts`` (training posts of the POI with the tag), ``per_poi`` the
    training posts of each POI and ``n_posts`` all training posts: integer aggregates, so both
    engines, counting them their own way, name every POI alike. A tag is specific when its share
    among the POI's posts is much higher than among all posts (lift). It must be on at least
    ``min_posts`` of the POI's posts and ``min_share`` of them (one user's private tag names
    nothing), and on ``min_share`` of the posts of at most ``max_spread`` of the POIs: a tag
    spread over most places (the city's name, ``#summer``) names none of them. A tag names at most
    one POI, the one it is most specific to.
    """
    if counts.empty or n_posts <= 0:
        return {}
    rows = [(str(p), str(t), int(c)) for p, t, c in counts[["poi", "tag", "posts"]].itertuples(index=False)]
    overall: dict[str, int] = {}
    spread: dict[str, int] = {}
    for poi, tag, c in rows:
        overall[tag] = overall.get(tag, 0) + c
        if c >= min_share * per_poi[poi]:
            spread[tag] = spread.get(tag, 0) + 1
    too_common = max_spread * len(per_poi) if len(per_poi) >= 2 else math.inf
    candidates = [
        (-(c / per_poi[poi]) / (overall[tag] / n_posts), -c, tag, poi)
        for poi, tag, c in rows
        if c >= min_posts and c >= min_share * per_poi[poi] and spread.get(tag, 0) <= too_common
    ]
    # most specific first; a tag names one POI only (two places called "#brighton" help no one)
    names: dict[str, str] = {}
    used: set[str] = set()
    for _, _, tag, poi in sorted(candidates):
        if poi not in names and tag not in used:
            names[poi] = f"#{tag}"
            used.add(tag)
    return dict(sorted(names.items()))


def cluster_tag_counts(posts: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int], int]:
    """The aggregates :func:`name_clusters` takes, from training posts with ``poi`` and ``hashtags``."""
    per_poi = {str(k): int(v) for k, v in posts.groupby("poi").size().items()}
    rows = posts[["poi", "hashtags"]].explode("hashtags").dropna(subset=["hashtags"])
    counts = rows.groupby(["poi", "hashtags"]).size().reset_index(name="posts").rename(columns={"hashtags": "tag"})
    return counts, per_poi, len(posts)


# --- place names the posts carry ----------------------------------------------------------

#: extra fields of a post that name its place, in order of preference: a tweet's ``venue``, and
#: Twitter's ``place`` (an object with ``full_name``/``name`` as the API writes it, or a string)
PLACE_FIELDS = ("venue", "place")


def named_place(extra: Mapping[str, Any]) -> str | None:
    """The place a post's extra fields name (``venue``, ``place``), whitespace collapsed; None if none."""
    for key in PLACE_FIELDS:
        value = extra.get(key)
        if isinstance(value, Mapping):
            value = _plain_name(value.get("full_name")) or _plain_name(value.get("name"))
        name = _plain_name(value)
        if name is not None:
            return name
    return None


def place_label(poi: str | None, name: str | None) -> str | None:
    """A post's POI label: its ``poi``, else the place it names (Instagram's location, a tweet's venue).

    A post that names its place trains a classifier of named places, whether or not the other
    posts name one (``prepare`` keeps the labelled ones and ``predict`` places the rest).
    """
    if poi is not None:
        return poi
    return None if name is None else _plain_name(name)


def _plain_name(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return " ".join(value.split())
    return None


def name_key(name: str) -> str:
    """``name`` with case, accents and punctuation folded: ``Brighton-Beach!`` and ``brighton beach`` are one key."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", plain).split())


def _base_key(name: str) -> str:
    """:func:`name_key` without a trailing ``, Region`` part (``Brighton Beach, Victoria``)."""
    head = name.split(",", 1)[0]
    return name_key(head) or name_key(name)


def _one_edit(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ by at most one insertion, deletion, substitution or swap of neighbours."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        swapped = i + 1 < len(a) and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2 :] == b[i + 2 :]
        return a[i + 1 :] == b[i + 1 :] or swapped
    return a[i + 1 :] == b[i:] if len(a) > len(b) else a[i:] == b[i + 1 :]


#: a name this many letters long or longer merges with one a single edit away (shorter ones are too
#: easily another word: "Pier 5" and "Pier 6")
MIN_EDITED_LETTERS = 6


def near_duplicate_names(a: str, b: str) -> bool:
    """Two place names for one place: equal after case, accents, punctuation and a trailing ``, Region``,
    or (from :data:`MIN_EDITED_LETTERS` letters on) one edit apart."""
    if name_key(a) == name_key(b):
        return True
    ba, bb = _base_key(a), _base_key(b)
    if ba == bb:
        return True
    letters = min(len(ba.replace(" ", "")), len(bb.replace(" ", "")))
    return letters >= MIN_EDITED_LETTERS and _one_edit(ba, bb)


def _name_like(label: str) -> bool:
    """A label that is itself a name (``Brighton Beach``), not an id (``4b05862bf964a520``, ``213385402``)."""
    return any(c.isalpha() for c in label) and (" " in label.strip() or not any(c.isdigit() for c in label))


def _deletions(key: str) -> set[str]:
    """``key`` and every string one character shorter: two keys one edit apart share one of these."""
    return {key} | {key[:i] + key[i + 1 :] for i in range(len(key))}


def merge_near_duplicate_labels(stats: pd.DataFrame, max_m: float) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Labels that name one place in different spellings, merged into the most used one.

    ``stats``: one row per label with ``poi``, ``name`` (its most frequent location name, or empty),
    ``posts``, ``n_xy`` and ``x, y, z`` (sums of its posts' unit vectors). Two labels merge when
    their names are near-duplicates (:func:`near_duplicate_names`; an id without a name never
    is) and their centres are within ``max_m`` metres; a label without coordinates merges with
    none. Returns ``{label: kept label}`` for each merged-away label, and one record per merge for
    the summary. Candidates are found through the names' one-deletion keys, so the cost grows with
    the number of labels, not with its square.
    """
    entries: list[tuple[str, str, int, np.ndarray]] = []
    xyz = stats[["x", "y", "z"]].to_numpy(dtype=float)
    columns = zip(
        stats["poi"].tolist(), stats["name"].tolist(), stats["posts"].tolist(), stats["n_xy"].tolist(), strict=True
    )
    for (poi, given, posts, n_xy), v in zip(columns, xyz, strict=True):
        name = given if isinstance(given, str) and given.strip() else ""
        if not name and _name_like(str(poi)):
            name = str(poi)
        norm = float(np.linalg.norm(v))
        if name and n_xy and norm > 0:
            entries.append((str(poi), name, int(posts), v / norm))
    buckets: dict[str, list[int]] = {}
    for i, (_, name, _, _) in enumerate(entries):
        base = _base_key(name)
        for key in _deletions(base) if len(base.replace(" ", "")) >= MIN_EDITED_LETTERS else {base}:
            buckets.setdefault(key, []).append(i)
    parent = list(range(len(entries)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for members in buckets.values():
        for j, a in enumerate(members):
            for b in members[j + 1 :]:
                near = _metres(entries[a][3], entries[b][3]) <= max_m
                if root(a) != root(b) and near and near_duplicate_names(entries[a][1], entries[b][1]):
                    parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for i in range(len(entries)):
        groups.setdefault(root(i), []).append(i)
    mapping: dict[str, str] = {}
    merges: list[dict[str, Any]] = []
    for members in groups.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda i: (-entries[i][2], entries[i][0]))
        kept = entries[members[0]]
        for i in members[1:]:
            mapping[entries[i][0]] = kept[0]
        merges.append(
            {
                "into": kept[0],
                "name": kept[1],
                "merged": [entries[i][1] for i in members[1:]],
                "names": len(members),
                "posts": sum(entries[i][2] for i in members),
                "within_m": round(max(_metres(kept[3], entries[i][3]) for i in members[1:])),
            }
        )
    merges.sort(key=lambda m: (-m["posts"], m["into"]))
    return mapping, merges


def _metres(a: np.ndarray, b: np.ndarray) -> float:
    """Great-circle distance between two unit vectors, in metres."""
    return float(2 * math.asin(min(1.0, float(np.linalg.norm(a - b)) / 2)) * EARTH_RADIUS_KM * 1000)


def label_sums(frame: pd.DataFrame) -> pd.DataFrame:
    """Per label of ``frame`` (``poi, poi_name, lat, lon``; labelled rows): what :func:`merge_near_duplicate_labels`
    takes. The name is the most frequent location name, the smallest among ties (as the POI table's)."""
    xy = frame["lat"].notna() & frame["lon"].notna()
    phi, lam = np.radians(frame["lat"].to_numpy(dtype=float)), np.radians(frame["lon"].to_numpy(dtype=float))
    parts = pd.DataFrame(
        {
            "poi": frame["poi"].to_numpy(),
            "n_xy": xy.to_numpy().astype(np.int64),
            "x": np.where(xy, np.cos(phi) * np.cos(lam), 0.0),
            "y": np.where(xy, np.cos(phi) * np.sin(lam), 0.0),
            "z": np.where(xy, np.sin(phi), 0.0),
        }
    )
    stats = parts.groupby("poi", sort=True).agg(
        posts=("poi", "size"), n_xy=("n_xy", "sum"), x=("x", "sum"), y=("y", "sum"), z=("z", "sum")
    )
    named = frame.dropna(subset=["poi_name"])
    names = named.groupby(["poi", "poi_name"]).size().reset_index(name="n")
    names = names.sort_values(["poi", "n", "poi_name"], ascending=[True, False, True]).drop_duplicates("poi")
    name_of = dict(zip(names["poi"], names["poi_name"], strict=True))
    stats["name"] = [str(name_of.get(poi, "")) for poi in stats.index]
    return stats.reset_index()


def merge_message(merge: Mapping[str, Any]) -> str:
    """One merge as the summary lists it."""
    others = [f"'{name}'" for name in merge["merged"]]
    listed = others[0] if len(others) == 1 else ", ".join(others[:-1]) + " and " + others[-1]
    return (
        f"merged {listed} into '{merge['name']}' ({merge['names']} names, {merge['posts']:,} posts, "
        f"within {merge['within_m']:,} m)"
    )
