"""Density-clustered POIs for more points than HDBSCAN can take: cluster a sample, assign the rest.

HDBSCAN's memory and time grow faster than linearly (its mutual-reachability tree holds every
point), so on 10M posts it does not finish on one machine. The out-of-core engine therefore
clusters a seeded uniform sample of at most ``sample`` points with the ordinary
:func:`postloc.data.pois.cluster_coordinates`, then streams every post with coordinates
(sampled ones included, so one rule decides all) and gives it the cluster whose centre is
nearest, provided it lies within that cluster's radius (the farthest sampled member from the
centre); otherwise the post is noise (no POI). Below ``sample`` points the caller clusters all
of them instead, exactly as the default engine does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from postloc.data.pois import PoiConfig, cluster_coordinates, to_unit_xyz
from postloc.data.prepare.duckdb_connection import arrow_batches

BATCH_ROWS = 262_144


def sample_centres(lat: np.ndarray, lon: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre (xyz on the Earth sphere, km) and radius (km, chord) of each cluster id 0..K-1."""
    k = int(labels.max(initial=-1)) + 1
    xyz = to_unit_xyz(lat, lon)
    centres = np.zeros((k, 3))
    radii = np.zeros(k)
    for c in range(k):
        members = xyz[labels == c]
        centre = members.mean(axis=0)
        centre *= np.linalg.norm(members[0]) / np.linalg.norm(centre)  # back onto the sphere
        centres[c] = centre
        radii[c] = np.linalg.norm(members - centre, axis=1).max()
    return centres, radii


def nearest_cluster(xyz: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Cluster id of the nearest centre when within its radius, else -1."""
    if len(centres) == 0:
        return np.full(len(xyz), -1, dtype=np.int64)
    from scipy.spatial import cKDTree

    distance, nearest = cKDTree(centres).query(xyz, k=1)
    return np.where(distance <= radii[nearest], nearest, -1).astype(np.int64)


def assign_to_sample_clusters(
    con, points_sql: str, n_points: int, config: PoiConfig, *, sample: int, seed: int, out: Path
) -> None:
    """Write ``out`` (Parquet: ``rn``, ``c``) for every row of ``points_sql`` (``rn, lat, lon``).

    The sample is ``sample`` positions drawn without replacement by ``numpy.random.default_rng(seed)``
    from the points in ``rn`` order, so a re-run picks the same points.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(n_points, size=min(sample, n_points), replace=False))
    con.register("poi_sample_positions", pa.table({"j": picked.astype(np.int64)}))
    lat, lon = (
        np.asarray(v)
        for v in con.sql(f"""
        SELECT lat, lon FROM (SELECT lat, lon, row_number() OVER (ORDER BY rn) - 1 AS j FROM ({points_sql}))
        SEMI JOIN poi_sample_positions USING (j) ORDER BY j
    """)
        .fetchnumpy()
        .values()
    )
    con.unregister("poi_sample_positions")
    labels = cluster_coordinates(lat, lon, config)
    centres, radii = sample_centres(lat, lon, labels)
    schema = pa.schema([("rn", pa.int64()), ("c", pa.int64())])
    with pq.ParquetWriter(out, schema) as writer:
        for batch in arrow_batches(con, points_sql, rows=BATCH_ROWS):
            lat_b = batch.column(1).to_numpy()
            lon_b = batch.column(2).to_numpy()
            c = nearest_cluster(to_unit_xyz(lat_b, lon_b), centres, radii)
            writer.write_table(pa.table({"rn": batch.column(0).cast(pa.int64()), "c": c}, schema=schema))
