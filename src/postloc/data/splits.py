"""User-disjoint, POI-stratified train/val/test splits.

One user's posts of one place are near-duplicates (same trip, same tags), so a random split
leaks them across train and test and flatters every model. Users are therefore assigned as a
whole: largest users first (ties in seeded random order), each to the split whose per-POI
post quotas it fills best, ties going to the split furthest below its overall share. Small
users placed last even out what the big blocks left. Cost is linear in the number of users;
scikit-learn's StratifiedGroupKFold balances similarly but took 36 s on 200k posts / 20k
users on this project's 2-core machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitConfig:
    train: float = 0.7
    val: float = 0.1
    test: float = 0.2
    seed: int = 0

    def fractions(self) -> np.ndarray:
        f = np.array([self.train, self.val, self.test], dtype=float)
        if (f < 0).any() or f.sum() <= 0:
            raise ValueError(f"split fractions must be non-negative and not all zero, got {f.tolist()}")
        return f / f.sum()


def user_groups(users: pd.Series) -> pd.Series:
    """The user of each post, a post without a user id being a user of its own (keyed by position)."""
    own = pd.Series([f"\0post:{i}" for i in range(len(users))], index=users.index)
    return users.astype("object").where(users.notna(), own)


def user_disjoint_split(users: pd.Series, pois: pd.Series, config: SplitConfig) -> pd.Series:
    """Split name per post. Posts without a user id count as users of their own."""
    n = len(pois)
    users = user_groups(users)
    user_codes, _ = pd.factorize(users, sort=True)
    poi_codes, poi_names = pd.factorize(pois, sort=True)
    pairs = pd.DataFrame({"u": user_codes, "p": poi_codes}).value_counts().sort_index()
    n_users = int(user_codes.max()) + 1 if n else 0
    chosen = assign_users(
        pairs.index.get_level_values("u").to_numpy(),
        pairs.index.get_level_values("p").to_numpy(),
        pairs.to_numpy(),
        n_users,
        len(poi_names),
        config,
    )
    return pd.Series(np.array(SPLITS, dtype=object)[chosen[user_codes]], index=pois.index, name="split")


def assign_users(
    u_of_pair: np.ndarray, p_of_pair: np.ndarray, c_of_pair: np.ndarray, n_users: int, n_pois: int, config: SplitConfig
) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) per user code, from (user, POI, posts) pair counts.

    Takes the aggregate rather than one row per post so that an out-of-core engine (DuckDB)
    can count the pairs and hand over only them: memory grows with users x POIs, not posts.
    ``u_of_pair`` must be codes ``0..n_users-1`` in the users' sorted order, pairs sorted by
    (user, POI); every user must have at least one pair.
    """
    return assign_to_targets(u_of_pair, p_of_pair, c_of_pair, n_users, n_pois, config.fractions(), config.seed)


def assign_to_targets(
    u_of_pair: np.ndarray,
    p_of_pair: np.ndarray,
    c_of_pair: np.ndarray,
    n_users: int,
    n_pois: int,
    targets: np.ndarray,
    seed: int,
    fixed: np.ndarray | None = None,
) -> np.ndarray:
    """Group index per user code for any number of groups with target shares ``targets`` (summing to 1).

    The one greedy behind splits and folds (:mod:`postloc.data.folds`): largest users first
    (ties in ``seed``-ed random order), each to the group whose per-POI post quotas it fills
    best, ties to the group furthest below its overall share. With equal shares the largest
    users therefore go to different groups. ``fixed`` (a group per user, -1 for "place me")
    pins users to a group: their posts are charged to it first, and only the others are placed.
    Inputs as in :func:`assign_users`.
    """
    targets = np.asarray(targets, dtype=float)
    c_of_pair = np.asarray(c_of_pair, dtype=np.int64)
    n = int(c_of_pair.sum())
    starts = np.searchsorted(u_of_pair, np.arange(n_users + 1))
    sizes = np.bincount(u_of_pair, weights=c_of_pair, minlength=n_users).astype(np.int64)

    need = targets[:, None] * np.bincount(p_of_pair, weights=c_of_pair, minlength=n_pois)[None, :].astype(float)
    overall = targets * n
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.permutation(n_users), -sizes))
    closed = targets == 0
    chosen = np.empty(n_users, dtype=np.int64)

    def charge(user: int, group: int) -> None:
        lo, hi = starts[user], starts[user + 1]
        chosen[user] = group
        need[group, p_of_pair[lo:hi]] -= c_of_pair[lo:hi]
        overall[group] -= c_of_pair[lo:hi].sum()

    if fixed is not None:
        fixed = np.asarray(fixed, dtype=np.int64)
        for user in np.flatnonzero(fixed >= 0):
            charge(int(user), int(fixed[user]))
        order = order[fixed[order] < 0]
    for user in order:
        lo, hi = starts[user], starts[user + 1]
        idx, counts = p_of_pair[lo:hi], c_of_pair[lo:hi]
        fit = np.minimum(counts[None, :], np.clip(need[:, idx], 0, None)).sum(axis=1)
        score = fit + 1e-6 * overall / max(n, 1)
        score[closed] = -np.inf
        charge(int(user), int(np.argmax(score)))
    return chosen
