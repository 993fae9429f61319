"""K user-disjoint folds for cross-validation: every post in exactly one test fold.

One split scores a model on one draw of test users, and on small data which users land in
test moves accuracy by several points, far more than training seeds do. Cross-validation
scores every post once, as a test post of the fold its user belongs to, so methods can be
compared *paired* (same posts, same folds) and the fold-to-fold spread shows up in the numbers.

How folds are built (:func:`assign_folds`):

* **by user**: a user's posts (near-duplicates of one trip) are in one fold; a post without a
  user id is a user of its own (key ``"\\0post:<id>"``);
* **stratified and balanced**: the same greedy as the train/val/test split
  (:func:`postloc.data.splits.assign_to_targets`) with K equal shares: largest users first, each
  to the fold whose per-POI quotas it fills best, ties to the fold furthest below its share.
  With equal shares the heaviest users go to different folds, and the many light users fill
  each fold's POIs up, so each fold has heavy and light users and (where a POI has at least K
  users) every POI. Quotas are per POI, not overall: a user heavier than 1/K of a POI fills
  their fold's quota there, and that fold still takes its share of the other POIs, so it is
  larger than 1/K (Dresden: one user has 28 % of the posts; their fold holds 37 %);
* **seeded and deterministic**: the seed orders users of equal size and numbers the folds;
* **validation inside the training folds**: for fold k, the users of the other K-1 folds are
  split user-disjointly into train and val (``val_fraction`` of their posts, same splitter,
  seed ``seed * 1000 + k``); the test fold is never used for early stopping or model selection.

A data variant with other posts (re-prepared at another hashtag threshold) keeps the folds:
``assign_folds(..., known=user_to_fold)`` pins every known user to its fold and places only the
new users, with the same greedy on what the pinned users left of each fold's quotas.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from postloc.data.prepared import PreparedData
from postloc.data.splits import SplitConfig, assign_to_targets, user_disjoint_split

NO_USER = "\0post:"


@dataclass(frozen=True)
class FoldConfig:
    k: int = 5
    seed: int = 0
    val_fraction: float = 0.125  # of the training folds' posts, by user: validation (early stopping)

    def __post_init__(self) -> None:
        if self.k < 2:
            raise ValueError(f"need at least 2 folds, got {self.k}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")


def user_keys(posts: pd.DataFrame) -> pd.Series:
    """The user of each post; a post without one is a user of its own, keyed by its id."""
    users = posts["user"].astype("object") if "user" in posts else pd.Series(None, index=posts.index, dtype=object)
    ids = posts["id"].astype("object") if "id" in posts else pd.Series(posts.index, index=posts.index)
    ids = ids.where(ids.notna(), pd.Series([f"#{i}" for i in range(len(posts))], index=posts.index))
    own = NO_USER + ids.astype(str)
    return users.where(users.notna(), own).astype(str)


def assign_folds(posts: pd.DataFrame, config: FoldConfig, known: Mapping[str, int] | None = None) -> pd.Series:
    """Fold (0..K-1) per post, by user, POI-stratified; ``known`` users keep their fold."""
    users = user_keys(posts)
    user_codes, user_names = pd.factorize(users, sort=True)
    poi_codes, poi_names = pd.factorize(posts["poi"].astype(str), sort=True)
    pairs = pd.DataFrame({"u": user_codes, "p": poi_codes}).value_counts().sort_index()
    fixed = None
    if known:
        fixed = np.array([int(known.get(u, -1)) for u in user_names], dtype=np.int64)
        if (fixed >= config.k).any():
            raise ValueError(f"a known user's fold is not below k={config.k}")
    chosen = assign_to_targets(
        pairs.index.get_level_values("u").to_numpy(),
        pairs.index.get_level_values("p").to_numpy(),
        pairs.to_numpy(),
        len(user_names),
        len(poi_names),
        np.full(config.k, 1.0 / config.k),
        config.seed,
        fixed,
    )
    if not known:  # number the folds in seeded order, so fold 0 is not always the heaviest user's
        chosen = np.random.default_rng(config.seed).permutation(config.k)[chosen]
    return pd.Series(chosen[user_codes], index=posts.index, name="fold")


def fold_splits(posts: pd.DataFrame, folds: pd.Series, k: int, config: FoldConfig) -> pd.Series:
    """``train``/``val``/``test`` per post for fold ``k``: its fold is test, the rest split user-disjointly."""
    split = pd.Series("test", index=posts.index, name="split", dtype=object)
    rest = folds != k
    if rest.any():
        inner = user_disjoint_split(
            user_keys(posts[rest]),
            posts.loc[rest, "poi"].astype(str),
            SplitConfig(train=1 - config.val_fraction, val=config.val_fraction, test=0.0, seed=config.seed * 1000 + k),
        )
        split[rest] = inner
    return split


def fold_data(data: PreparedData, folds: pd.Series, k: int, config: FoldConfig) -> PreparedData:
    """``data`` with its ``split`` column replaced by fold ``k``'s train/val/test."""
    posts = data.posts.copy()
    posts["split"] = fold_splits(posts, folds.reindex(posts.index), k, config).to_numpy()
    return replace(data, posts=posts)


def user_fold_table(posts: pd.DataFrame, folds: pd.Series) -> pd.DataFrame:
    """One row per user: ``user``, ``fold``, ``posts`` (what :func:`write_folds` stores)."""
    table = pd.DataFrame({"user": user_keys(posts).to_numpy(), "fold": folds.to_numpy()})
    return table.groupby("user", sort=True).agg(fold=("fold", "first"), posts=("fold", "size")).reset_index()


def write_folds(path: str | Path, table: pd.DataFrame, config: FoldConfig) -> None:
    """``folds.parquet``: user -> fold, with the fold settings in the file's metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table[["user", "fold", "posts"]], preserve_index=False)
    arrow = arrow.replace_schema_metadata({b"postloc_folds": json.dumps(asdict(config)).encode()})
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(arrow, tmp)
    tmp.replace(path)


def read_folds(path: str | Path) -> tuple[dict[str, int], FoldConfig]:
    """The user -> fold map and the settings written by :func:`write_folds`."""
    import pyarrow.parquet as pq

    arrow = pq.read_table(path)
    meta = json.loads((arrow.schema.metadata or {})[b"postloc_folds"])
    table = arrow.to_pandas()
    return dict(zip(table["user"].astype(str), table["fold"].astype(int), strict=True)), FoldConfig(**meta)
