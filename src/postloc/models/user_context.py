"""Same-user, same-day context: the other posts a user made that day as evidence of a post's place.

People post in bursts: a visitor uploads several photos from one spot, tags one of them with the
place and the rest with the city's name. A per-post model can only answer a prior for the
city-only posts; the user's other posts of the same day, which need no label, say where they were.
On the embedded Dresden data 84 % of the prepared posts share a user and a calendar day with
another post, and two such posts are at the same POI 66 % of the time (docs/winning-model.md).

The rule is a two-post mixture: with probability ``rho`` a neighbour was made at the post's
place, otherwise anywhere by the prior ``pi``. For a post ``i`` with model probabilities ``p_i``
and the mean ``m_i`` of its neighbours' probabilities this gives

    p'_i(k)  ∝  p_i(k) * ((1 - rho) + rho * m_i(k) / pi(k))

(exact for one neighbour, the mean standing in for several). ``rho`` is one number fitted by
weighted log-loss on out-of-fold probabilities of training users (their neighbours were held out
with them), so a data set whose users do not post in bursts gets ``rho`` near 0 and the rule
changes nothing. A post with no neighbour in the frame (a single post sent to the server, a user
who posted once that day, no ``user`` or ``created``) keeps its own probabilities exactly.

Only unlabelled posts of the same user are read, never a label: what an analyst holding a user's
timeline, or an adversary, would have. Per-post baselines do not use it; reports say so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: how posts are grouped: "day" = same user and same calendar day of ``created``; "none" = no context
CONTEXTS = ("none", "day")
#: the prior is floored here (relative to uniform) so that a class rare in training cannot blow up the ratio
PRIOR_FLOOR = 1e-2
#: the largest rho the fit may choose (1 would let a neighbour veto every other place)
MAX_RHO = 0.99


def _day(value: Any) -> str | None:
    """The calendar day of a ``created`` value (ISO string as prepared writes it, or a datetime); None if absent."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str):
        day = value[:10]
        return day if len(day) == 10 and day[4] == "-" and day[7] == "-" else None
    if hasattr(value, "date"):
        try:
            return str(value.date().isoformat())
        except (AttributeError, ValueError):  # NaT and friends
            return None
    return None


def context_groups(posts: pd.DataFrame, kind: str) -> np.ndarray | None:
    """A group number per post, posts of one user and one day sharing it; -1 for a post without neighbours.

    None when no post has a neighbour (or ``kind`` is "none", or the frame has no user or date).
    A post without a user id has no neighbours: it cannot be told apart from another user's.
    """
    if kind == "none" or not len(posts) or "user" not in posts or "created" not in posts:
        return None
    days = posts["created"].map(_day)
    users = posts["user"]
    known = (users.notna() & days.notna()).to_numpy()
    if known.sum() < 2:
        return None
    keys = pd.Series(users.astype(str).to_numpy(), dtype=object)[known] + "\0" + days.astype(str).to_numpy()[known]
    codes, _ = pd.factorize(keys)
    sizes = np.bincount(codes)
    groups = np.full(len(posts), -1, dtype=np.int64)
    groups[known] = np.where(sizes[codes] > 1, codes, -1)
    return groups if (groups >= 0).any() else None


def neighbour_mean(proba: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per post with neighbours, the mean of the *other* posts' rows of ``proba`` in its group (else 0)."""
    out = np.zeros_like(proba)
    has = groups >= 0
    if not has.any():
        return out
    g = groups[has]
    sums = np.zeros((int(g.max()) + 1, proba.shape[1]))
    np.add.at(sums, g, proba[has])
    counts = np.bincount(g)
    out[has] = (sums[g] - proba[has]) / (counts[g] - 1)[:, None]
    return out


def smoothed_prior(y: np.ndarray, weights: np.ndarray, n_classes: int) -> np.ndarray:
    """The weighted class frequencies of the training labels (-1 ignored), floored and renormalised."""
    known = y >= 0
    counts = np.bincount(y[known], weights=weights[known], minlength=n_classes).astype(float)
    prior = counts / counts.sum() if counts.sum() > 0 else np.full(n_classes, 1.0 / n_classes)
    prior = np.maximum(prior, PRIOR_FLOOR / n_classes)
    return prior / prior.sum()


def apply_context(proba: np.ndarray, groups: np.ndarray | None, rho: float, prior: np.ndarray) -> np.ndarray:
    """``proba`` with each post that has neighbours updated by the mixture rule; the others unchanged."""
    if groups is None or rho <= 0:
        return proba
    has = groups >= 0
    mean = neighbour_mean(proba, groups)[has]
    out = proba.copy()
    mixed = proba[has] * ((1.0 - rho) + rho * mean / prior)
    out[has] = mixed / mixed.sum(axis=1, keepdims=True)
    return out


def fit_rho(
    proba: np.ndarray, groups: np.ndarray | None, y: np.ndarray, weights: np.ndarray, prior: np.ndarray
) -> float:
    """The ``rho`` in [0, MAX_RHO] minimising the weighted log-loss of ``y`` over the posts with neighbours.

    ``proba`` must be out of fold with whole users held out together, so that a post's neighbours
    were not seen with it.
    """
    from scipy.optimize import minimize_scalar

    if groups is None:
        return 0.0
    use = (groups >= 0) & (y >= 0)
    if not use.any():
        return 0.0
    mean = neighbour_mean(proba, groups)[use]
    p, yy, w = proba[use], y[use], weights[use] / weights[use].sum()
    rows = np.arange(len(yy))

    def loss(rho: float) -> float:
        mixed = p * ((1.0 - rho) + rho * mean / prior)
        chosen = mixed[rows, yy] / mixed.sum(axis=1)
        return float(-(w * np.log(np.maximum(chosen, 1e-12))).sum())

    best = minimize_scalar(loss, bounds=(0.0, MAX_RHO), method="bounded", options={"xatol": 1e-4})
    rho = float(best.x)
    return rho if loss(rho) < loss(0.0) else 0.0
