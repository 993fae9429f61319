"""Same-user context: the other posts a user made that day (and on other days) as evidence of a post's place.

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

A second kind of neighbour, read with ``context="user"``: the same user's posts of *other* days
(or undated). Where users stay in one place (residents, labels that are cities or districts) they
say much; where they travel from sight to sight (Dresden's visitors: two posts of one user on
different days are at the same POI 10 % of the time, two random posts 6 %) they say little. So they get a
weight of their own, and the rule becomes ``p'(k) ∝ p(k) * (1 + sum_j rho_j * (m_j(k) / pi(k) - 1))``
over the kinds ``j`` a post has, each ``rho_j >= 0`` and their sum <= MAX_RHO, fitted together.

Only unlabelled posts of the same user are read, never a label: what an analyst holding a user's
timeline, or an adversary, would have. Per-post baselines do not use it; reports say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from postloc.data.schema import is_missing

#: the kinds of neighbour evidence each context setting reads, one fitted weight per kind:
#: "day" = the user's other posts of the same calendar day of ``created``; "user" = those and, as a
#: second kind with its own weight, the user's posts of other days (or undated); "none" = no context
LEVELS: dict[str, tuple[str, ...]] = {"none": (), "day": ("same day",), "user": ("same day", "other days")}
CONTEXTS = tuple(LEVELS)
#: the prior is floored here (relative to uniform) so that a class rare in training cannot blow up the ratio
PRIOR_FLOOR = 1e-2
#: the largest rho the fit may choose (1 would let a neighbour veto every other place)
MAX_RHO = 0.99


def _day(value: Any) -> str | None:
    """The calendar day of a ``created`` value (ISO string as prepared writes it, or a datetime); None if absent."""
    if is_missing(value):
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
    if not LEVELS[kind] or not len(posts) or "user" not in posts or "created" not in posts:
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


@dataclass(frozen=True)
class Evidence:
    """One kind of neighbours' evidence: per post, the mean of their probabilities and whether it has any."""

    mean: np.ndarray  # (n, k); 0 where the post has no neighbour of this kind
    has: np.ndarray  # (n,) bool


def _user_codes(posts: pd.DataFrame) -> np.ndarray:
    """A number per distinct user; -1 where the post has no user."""
    users = posts["user"]
    known = users.notna().to_numpy()
    codes = np.full(len(posts), -1, dtype=np.int64)
    codes[known] = pd.factorize(pd.Series(users.astype(str).to_numpy(), dtype=object)[known])[0]
    return codes


def _other_days_mean(proba: np.ndarray, users: np.ndarray, days: np.ndarray | None) -> Evidence | None:
    """Per post, the mean of its user's posts not of its own day (its day group, or itself when it has none)."""
    known = users >= 0
    if not known.any():
        return None
    n_users = int(users.max()) + 1
    user_sums = np.zeros((n_users, proba.shape[1]))
    np.add.at(user_sums, users[known], proba[known])
    user_counts = np.bincount(users[known], minlength=n_users)
    own_sums, own_counts = proba.copy(), np.ones(len(proba), dtype=np.int64)
    if days is not None and (days >= 0).any():
        in_day = days >= 0
        day_sums = np.zeros((int(days.max()) + 1, proba.shape[1]))
        np.add.at(day_sums, days[in_day], proba[in_day])
        own_sums[in_day] = day_sums[days[in_day]]
        own_counts[in_day] = np.bincount(days[in_day])[days[in_day]]
    counts = np.where(known, user_counts[np.maximum(users, 0)] - own_counts, 0)
    has = counts > 0
    if not has.any():
        return None
    mean = np.zeros_like(proba)
    mean[has] = (user_sums[users[has]] - own_sums[has]) / counts[has][:, None]
    return Evidence(mean, has)


def context_evidence(proba: np.ndarray, posts: pd.DataFrame, kind: str) -> list[Evidence | None]:
    """One entry per kind of neighbours that ``kind`` reads (see LEVELS); None where no post has one."""
    levels = LEVELS[kind]
    if not levels or not len(posts) or "user" not in posts:
        return [None] * len(levels)
    days = context_groups(posts, kind)
    out: list[Evidence | None] = [None if days is None else Evidence(neighbour_mean(proba, days), days >= 0)]
    if "other days" in levels:
        out.append(_other_days_mean(proba, _user_codes(posts), days))
    return out


def _factors(evidence: list[Evidence | None], rhos: Any, prior: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The mixture's factor per class for the posts ``rows``: 1 + sum of rho * (m / pi - 1) over the kinds they have."""
    factor: np.ndarray | None = None
    for level, rho in zip(evidence, rhos, strict=True):
        if level is None or rho <= 0:
            continue
        has = level.has[rows, None]
        term = np.where(has, rho * (level.mean[rows] / prior - 1.0), 0.0)
        factor = term if factor is None else factor + term
    return np.ones((len(rows), len(prior))) if factor is None else 1.0 + factor


def apply_context(proba: np.ndarray, evidence: list[Evidence | None], rhos: Any, prior: np.ndarray) -> np.ndarray:
    """``proba`` with each post that has neighbours updated by the mixture rule; the others unchanged."""
    present = [lv.has for lv, rho in zip(evidence, rhos, strict=True) if lv is not None and rho > 0]
    if not present:
        return proba
    rows = np.flatnonzero(np.logical_or.reduce(present))
    out = proba.copy()
    mixed = proba[rows] * _factors(evidence, rhos, prior, rows)
    out[rows] = mixed / mixed.sum(axis=1, keepdims=True)
    return out


def fit_rhos(
    proba: np.ndarray, evidence: list[Evidence | None], y: np.ndarray, weights: np.ndarray, prior: np.ndarray
) -> tuple[float, ...]:
    """One ``rho`` per kind of neighbours, each >= 0 and their sum <= MAX_RHO, minimising the weighted
    log-loss of ``y`` over the posts with any neighbour; all 0 unless that beats the posts alone.

    ``proba`` must be out of fold with whole users held out together, so that a post's neighbours
    were not seen with it. A kind no post has keeps weight 0.
    """
    from scipy.optimize import minimize, minimize_scalar

    zeros = tuple(0.0 for _ in evidence)
    usable = [i for i, lv in enumerate(evidence) if lv is not None]
    if not usable:
        return zeros
    known = y >= 0
    use = known & np.logical_or.reduce([evidence[i].has for i in usable])  # type: ignore[union-attr]
    if not use.any():
        return zeros
    rows = np.flatnonzero(use)
    p, yy, w = proba[rows], y[rows], weights[rows] / weights[rows].sum()
    picked = np.arange(len(rows))

    def loss(free: np.ndarray) -> float:
        rhos = np.zeros(len(evidence))
        rhos[usable] = free
        mixed = p * _factors(evidence, rhos, prior, rows)
        chosen = mixed[picked, yy] / mixed.sum(axis=1)
        return float(-(w * np.log(np.maximum(chosen, 1e-12))).sum())

    if len(usable) == 1:
        best = minimize_scalar(
            lambda r: loss(np.array([r])), bounds=(0.0, MAX_RHO), method="bounded", options={"xatol": 1e-4}
        )
        free = np.array([float(best.x)])
    else:
        # a few starts: the loss is smooth but the corner where one kind takes everything can trap one start
        starts = [np.full(len(usable), 0.1), *(np.eye(len(usable))[i] * 0.5 for i in range(len(usable)))]
        fits = [
            minimize(
                loss,
                x0,
                method="SLSQP",
                bounds=[(0.0, MAX_RHO)] * len(usable),
                constraints=[{"type": "ineq", "fun": lambda r: MAX_RHO - r.sum()}],
            )
            for x0 in starts
        ]
        free = np.clip(min(fits, key=lambda f: f.fun).x, 0.0, MAX_RHO)
        if free.sum() > MAX_RHO:  # the constraint holds only to the solver's tolerance
            free *= MAX_RHO / free.sum()
    if loss(free) >= loss(np.zeros(len(usable))):
        return zeros
    rhos = np.zeros(len(evidence))
    rhos[usable] = free
    return tuple(float(r) for r in rhos)
