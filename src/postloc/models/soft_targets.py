"""Soft targets for label smoothing that knows geography: nearer POIs get more of the smoothed mass.

With plain label smoothing a post at the Zwinger gives the same small share of its target to the
Semperoper next door and to a bridge 5 km away. Geo-aware smoothing spreads the share ``eps``
over the *other* POIs in proportion to ``exp(-d / scale_km)``, ``d`` the great-circle distance
between POI centres, so that the model is punished less for confusing neighbours than for
confusing far-apart places. A POI's centre here is the mean lat/lon of its training posts
(:func:`class_centres`): self-contained, no POI table needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from postloc.errors import PostlocError
from postloc.metrics import haversine_km


def class_centres(posts: pd.DataFrame, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``lat`` and ``lon`` of each class's posts (NaN for a class without a located post)."""
    if "lat" not in posts or "lon" not in posts:
        raise PostlocError("geo-aware label smoothing needs the training posts' lat/lon (columns lat, lon)")
    frame = pd.DataFrame(
        {
            "poi": posts["poi"].astype(str).to_numpy(),
            "lat": pd.to_numeric(posts["lat"], errors="coerce").to_numpy(dtype=float),
            "lon": pd.to_numeric(posts["lon"], errors="coerce").to_numpy(dtype=float),
        }
    ).dropna()
    means = frame.groupby("poi")[["lat", "lon"]].mean().reindex([str(c) for c in classes])
    return means["lat"].to_numpy(dtype=float), means["lon"].to_numpy(dtype=float)


def geo_soft_targets(lat: np.ndarray, lon: np.ndarray, smoothing: float, scale_km: float) -> np.ndarray:
    """``K x K`` target rows: ``1 - smoothing`` on the label, ``smoothing`` over the others by ``exp(-d / scale_km)``.

    Every row sums to 1. A class without a centre (NaN) gets none of another row's mass; a row
    whose label has no centre, or whose other classes have none, spreads its mass uniformly.
    """
    lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    k = len(lat)
    if not 0 <= smoothing < 1 or not scale_km > 0:
        raise PostlocError(f"need 0 <= smoothing < 1 and scale_km > 0, got {smoothing}, {scale_km}")
    targets = np.eye(k) * (1.0 - smoothing)
    if k < 2:
        return np.eye(k)
    distance = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    for label in range(k):
        d = distance[label].copy()
        d[label] = np.nan
        known = ~np.isnan(d)
        share = np.zeros(k)
        if known.any():
            share[known] = np.exp(-(d[known] - d[known].min()) / scale_km)  # shifted: no underflow to all-zero
        else:
            share[np.arange(k) != label] = 1.0
        targets[label] += smoothing * share / share.sum()
    return targets
