"""Cross-validated experiments: K user-disjoint folds, per-post outcomes, paired differences.

With ``ExperimentConfig(folds=K)`` every cell runs once per fold (and seed): trained on the
other folds (validation: a user-disjoint eighth of them), scored on its fold. The fold of each
user is decided once, on the prepared folder's posts (:mod:`postloc.data.folds`), and stored in
``OUT/folds.parquet`` (user -> fold, the fold settings in its metadata), so a resumed run, and
every data variant, uses the same folds: a variant's posts (Fig. 4 re-prepares from the raw
input) keep their user's fold; users the prepared folder does not have are placed by the same
greedy on what the known users left of each fold's quotas (deterministic, not stored).

Each fold's data is a copy of the variant's folder with only the ``split`` column rewritten
(``OUT/data/folds/VARIANT/fold-K/``; image features hard-linked where possible), so training and
scoring go through the ordinary ``train`` on a prepared folder.

Each fold cell also stores its per-post outcome, ``OUT/predictions/KEY.parquet`` (post id,
correct, probability of the true POI, km to the truth; a few kB per cell), so that methods can be
compared on the pooled out-of-fold predictions: :func:`paired_differences` gives each method's
difference to a reference with a 95 % t-interval over the K fold differences and a paired
bootstrap over test users.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from postloc.data.folds import (
    FoldConfig,
    assign_folds,
    fold_data,
    read_folds,
    user_fold_table,
    user_keys,
    write_folds,
)
from postloc.data.prepared import POSTS, POSTS_JSONL, load_prepared, write_posts
from postloc.errors import PostlocError
from postloc.experiments import folder as layout

BOOTSTRAP_RESAMPLES = 2000
LEVEL = 0.95
_SKIP = (POSTS, POSTS_JSONL)  # rewritten for the fold, or left out (the exchange copy)


def ensure_folds(prepared: Path, out: Path, config: FoldConfig) -> dict[str, int]:
    """The user -> fold map of this experiment folder: read back, or made now from ``prepared``."""
    path = layout.folds_path(out)
    if path.exists():
        known, stored = read_folds(path)
        if stored != config:
            raise PostlocError(
                f"{path} holds folds made with k={stored.k}, seed={stored.seed}, val_fraction="
                f"{stored.val_fraction}; this run asks for k={config.k}, seed={config.seed}: use those "
                "settings to resume, or another --out"
            )
        return known
    posts = load_prepared(prepared).posts
    table = user_fold_table(posts, assign_folds(posts, config))
    write_folds(path, table, config)
    return dict(zip(table["user"], table["fold"].astype(int), strict=True))


def fold_summary(prepared: Path, known: Mapping[str, int], k: int) -> list[dict[str, int]]:
    """Posts and users per fold of the prepared folder (for the report)."""
    posts = load_prepared(prepared).posts
    folds = user_keys(posts).map(known)
    users = pd.DataFrame({"u": user_keys(posts), "f": folds}).drop_duplicates()
    return [{"fold": f, "posts": int((folds == f).sum()), "users": int((users["f"] == f).sum())} for f in range(k)]


class FoldFolders:
    """``OUT/data/folds/VARIANT/fold-K/``: the variant's prepared folder with fold K's splits."""

    def __init__(self, out: Path, known: Mapping[str, int], config: FoldConfig):
        self.root = layout.fold_root(out)
        self.known = known
        self.config = config
        self._folds: dict[str, tuple[Any, pd.Series]] = {}

    def folder(self, variant: str, source: str | Path, k: int) -> Path:
        target = self.root / variant / f"fold-{k}"
        if (target / layout.FOLD_INFO).exists():
            return target
        from postloc.io.atomic import write_folder_atomically

        if variant not in self._folds:
            data = load_prepared(source)
            self._folds[variant] = (data, assign_folds(data.posts, self.config, known=self.known))
        data, folds = self._folds[variant]
        fold = fold_data(data, folds, k, self.config)

        def fill(tmp: Path) -> None:
            for item in Path(source).iterdir():
                if not item.is_file() or item.name in _SKIP:
                    continue
                try:
                    os.link(item, tmp / item.name)
                except OSError:
                    shutil.copy2(item, tmp / item.name)
            write_posts(fold.posts, tmp)
            counts = fold.posts["split"].value_counts().to_dict()
            info = {"variant": variant, "fold": k, "k": self.config.k, "seed": self.config.seed, "posts": counts}
            (tmp / layout.FOLD_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")

        write_folder_atomically(target, fill)
        return target


def outcomes(proba: np.ndarray, classes: Sequence[str], posts: pd.DataFrame, pois: pd.DataFrame) -> pd.DataFrame:
    """Per post: ``id``, ``correct``, ``p_true`` (probability of the true POI), ``km`` (predicted POI's
    centre to the truth, as in :func:`postloc.metrics.evaluate`), ``predicted`` (the top POI) and
    ``confidence`` (its probability), which a report needs for confusions and examples."""
    from postloc.metrics import post_errors

    proba = np.asarray(proba, dtype=float)
    y_true, y_pred, km, _ = post_errors(proba, classes, posts, pois)
    rows = np.arange(len(posts))
    p_true = np.where(y_true >= 0, proba[rows, np.clip(y_true, 0, None)], 0.0) if len(posts) else np.zeros(0)
    return pd.DataFrame(
        {
            "id": posts["id"].astype(str).to_numpy(),
            "correct": y_true == y_pred,
            "p_true": p_true.astype(np.float32),
            "km": km.astype(np.float32),
            "predicted": np.asarray([str(c) for c in classes], dtype=object)[y_pred] if len(classes) else "",
            "confidence": (proba.max(axis=1) if len(classes) else np.zeros(len(posts))).astype(np.float32),
        }
    )


def write_outcomes(out: Path, key: str, frame: pd.DataFrame) -> None:
    from postloc.io.atomic import atomic_path

    path = layout.outcomes_path(out, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False, compression="zstd")


def read_outcomes(out: Path, keys: Sequence[str]) -> pd.DataFrame | None:
    """The pooled outcomes of a row's cells, averaged over seeds per post (None if any is missing)."""
    paths = [layout.outcomes_path(out, k) for k in keys]
    if not paths or not all(p.exists() for p in paths):
        return None
    frame = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    frame["correct"] = frame["correct"].astype(float)
    return frame.groupby("id", sort=True)[["correct", "p_true", "km"]].mean()


def t_interval(diffs: Sequence[float], level: float = LEVEL) -> tuple[float | None, float | None]:
    """Student-t interval of the mean of ``diffs`` (None without two values)."""
    from scipy import stats

    d = np.asarray([v for v in diffs if v is not None and np.isfinite(v)], dtype=float)
    if len(d) < 2:
        return None, None
    half = float(stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    return float(d.mean() - half), float(d.mean() + half)


def bootstrap_interval(
    users: np.ndarray,
    diff: np.ndarray,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> tuple[float | None, float | None]:
    """Paired bootstrap over users: resample users with replacement, the mean per-post ``diff`` of
    their posts (posts with NaN left out), percentile interval."""
    ok = np.isfinite(diff)
    if not ok.any():
        return None, None
    codes, _ = pd.factorize(pd.Series(users[ok]))
    n_users = int(codes.max()) + 1
    sums = np.bincount(codes, weights=diff[ok], minlength=n_users)
    counts = np.bincount(codes, minlength=n_users).astype(float)
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    chunk = max(1, min(resamples, 2_000_000 // max(n_users, 1)))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        weights = rng.multinomial(n_users, np.full(n_users, 1.0 / n_users), size=size).astype(float)
        stats[start : start + size] = (weights @ sums) / np.maximum(weights @ counts, 1e-12)
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def paired_differences(
    rows: list[dict[str, Any]],
    reference: dict[str, Any],
    out: Path,
    user_of_post: Mapping[str, str],
    *,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Each row's accuracy and mean-km difference to ``reference`` (row minus reference).

    ``rows`` are collected rows with ``per_fold`` values and their cells' ``keys``; the
    t-interval is over the folds both have, the bootstrap over the users of the posts both scored.
    """
    ref = read_outcomes(out, reference["keys"])
    result = []
    for row in rows:
        if row is reference or row.get("na"):
            continue
        entry: dict[str, Any] = {"row": row["row"], "column": row.get("column", ""), "model": row["model"]}
        for metric, name in (("accuracy", "acc"), ("mean_km", "km")):
            mine, theirs = row[metric].get("per_fold", {}), reference[metric].get("per_fold", {})
            shared = sorted(set(mine) & set(theirs))
            diffs = [mine[f] - theirs[f] for f in shared]
            lo, hi = t_interval(diffs)
            entry[f"d_{name}"] = float(np.mean(diffs)) if diffs else None
            entry[f"d_{name}_t"] = [lo, hi] if lo is not None else None
            entry[f"d_{name}_folds"] = len(diffs)
        mine_posts = read_outcomes(out, row["keys"])
        if mine_posts is not None and ref is not None:
            both = mine_posts.merge(ref, left_index=True, right_index=True, suffixes=("_m", "_r"))
            users = both.index.map(lambda i: user_of_post.get(i, f"\0post:{i}")).to_numpy()
            entry["pooled_posts"], entry["pooled_users"] = int(len(both)), int(len(set(users)))
            for col, name in (("correct", "acc"), ("km", "km")):
                diff = (both[f"{col}_m"] - both[f"{col}_r"]).to_numpy(dtype=float)
                lo, hi = bootstrap_interval(users, diff, seed=seed)
                entry[f"d_{name}_pooled"] = float(np.nanmean(diff)) if np.isfinite(diff).any() else None
                entry[f"d_{name}_boot"] = [lo, hi] if lo is not None else None
        result.append(entry)
    return result
