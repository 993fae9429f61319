"""The verdict: does a model place posts better than a trivial answer, and than the reference, by more than noise?

A score alone does not say whether a model is worth using: on captions labelled by city, a model
with 0.39 accuracy can be exactly as good as always answering the biggest city. The verdict
compares the model, post by post, with two answers on the same test posts:

* **always answering the majority POI**, the POI most frequent among the *training* posts of each
  fold (or of the prepared split without folds), scored on that fold's test posts, so the trivial
  answer learns exactly what the model could learn from the labels alone;
* **the reference model** (``crossval --reference``, quickstart's tfidf-logreg, Table II's best
  baseline), from the paired differences :func:`postloc.experiments.cv.paired_differences` already
  computed.

Each difference gets the paired bootstrap over test users of :func:`postloc.experiments.cv.bootstrap_interval`
(a user's posts move together). The model *beats* an answer when the whole 95 % interval is above
0; an interval that holds 0 means the data cannot tell them apart. The result is a JSON object
(``results.json``, ``quickstart.json``) with one sentence for people (reports, the console, the page).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from postloc.data.prepared import PreparedData, load_prepared
from postloc.experiments import cv
from postloc.experiments import folder as layout

DEFAULT_SUBJECT = "stack"  # Table II's verdict is about postloc's default model when it ran


def majority_answers(data: PreparedData, out: Path, folds: int) -> tuple[pd.Series, list[str], pd.DataFrame]:
    """Per test post (by id): 1.0 when its POI is the majority POI of its fold's training posts, else 0.0;
    the majority POI of each fold (one entry without folds); and the prepared posts (for their users).

    With folds the splits are rebuilt exactly as each fold's cells saw them (the stored user -> fold
    map, :func:`postloc.data.folds.fold_splits`); without, the prepared folder's own split.
    """
    from postloc.data.folds import assign_folds, fold_splits, read_folds

    posts = data.posts
    order = [str(p) for p in data.pois["poi"]]  # ties go to the earlier POI of the table, as the classes do
    poi = posts["poi"].astype(str)
    ids = posts["id"].astype(str)
    splits: list[pd.Series] = []
    if folds:
        known, config = read_folds(layout.folds_path(out))
        assigned = assign_folds(posts, config, known=known)
        splits = [fold_splits(posts, assigned, k, config) for k in range(config.k)]
    else:
        splits = [posts["split"].astype(str)]
    correct: dict[str, float] = {}
    chosen = []
    for split in splits:
        majority = _most_frequent(poi[split == "train"], order)
        chosen.append(majority)
        test = split == "test"
        correct.update(zip(ids[test], (poi[test] == majority).astype(float), strict=True))
    return pd.Series(correct, dtype=float).sort_index(), chosen, posts


def _most_frequent(labels: pd.Series, order: list[str]) -> str:
    counts = labels.value_counts()
    if counts.empty:
        return ""
    best = counts.max()
    tied = set(counts.index[counts == best])
    return next((p for p in order if p in tied), sorted(tied)[0])


def poi_label(prepared_pois: pd.DataFrame, poi: str) -> str:
    """A POI's name from the POI table, else its id (what people recognise)."""
    table = prepared_pois.assign(poi=prepared_pois["poi"].astype(str)).set_index("poi")
    if "name" in table and poi in table.index:
        name = table.at[poi, "name"]
        if isinstance(name, str) and name.strip():
            return name.strip()
    return poi


def decide(
    row: dict[str, Any],
    paired_row: dict[str, Any] | None,
    reference: str | None,
    out: Path,
    majority: tuple[pd.Series, list[str], pd.DataFrame],
    majority_name: str,
    *,
    seed: int = 0,
) -> dict[str, Any] | None:
    """The verdict on ``row`` (a collected row with its cells' ``keys``), or None without per-post outcomes.

    ``paired_row``: the row's entry of the paired differences to ``reference`` (None: no reference).
    """
    from postloc.data.folds import user_keys

    mine = cv.read_outcomes(out, row.get("keys") or [])
    if mine is None:
        return None
    answers, chosen, posts = majority
    both = mine[["correct"]].join(answers.rename("majority"), how="inner")
    user_of_post = dict(zip(posts["id"].astype(str), user_keys(posts), strict=True))
    users = both.index.map(lambda i: user_of_post.get(i, f"\0post:{i}")).to_numpy()
    diff = (both["correct"] - both["majority"]).to_numpy(dtype=float)
    lo, hi = cv.bootstrap_interval(users, diff, seed=seed)
    d_major = float(np.mean(diff)) if len(diff) else None
    verdict: dict[str, Any] = {
        "model": row["model"],
        "level": cv.LEVEL,
        "bootstrap_resamples": cv.BOOTSTRAP_RESAMPLES,
        "posts": int(len(both)),
        "users": int(len(set(users))),
        "majority": {
            "poi": max(set(chosen), key=chosen.count) if chosen else "",
            "name": majority_name,
            "per_fold": chosen,
            "accuracy": float(both["majority"].mean()) if len(both) else None,
        },
        "d_majority": d_major,
        "d_majority_interval": [lo, hi] if lo is not None else None,
        "beats_majority": bool(lo is not None and lo > 0),
        "reference": reference,
        "d_reference": None,
        "d_reference_interval": None,
        "beats_reference": None,
    }
    if reference and paired_row is not None:
        boot = paired_row.get("d_acc_boot")
        verdict["d_reference"] = paired_row.get("d_acc_pooled")
        verdict["d_reference_interval"] = boot
        verdict["beats_reference"] = bool(boot is not None and boot[0] > 0)
    verdict["majority_sentence"] = _clause(
        d_major, verdict["d_majority_interval"], f"always answering '{majority_name}'"
    )
    verdict["reference_sentence"] = (
        _clause(verdict["d_reference"], verdict["d_reference_interval"], reference, trivial=False)
        if reference
        else None
    )
    verdict["sentence"] = sentence(verdict)
    return verdict


def _clause(diff: float | None, interval: list[float] | None, other: str, *, trivial: bool = True) -> str:
    """The clause on one comparison: "places posts better than OTHER by N points (95 % interval a to b)",
    "places posts worse ...", or "cannot be told apart from OTHER ..." (a trivial answer adds a warning)."""
    if diff is None or not interval:
        return f"has no paired comparison with {other} (no per-post outcomes)"
    lo, hi = (100 * v for v in interval)
    points = 100 * diff
    if lo > 0:
        return f"places posts better than {other} by {points:.1f} points (95 % interval {lo:.1f} to {hi:.1f})"
    warning = ": do not rely on it" if trivial else ""
    if hi < 0:
        return f"places posts worse than {other} by {-points:.1f} points (95 % interval {lo:.1f} to {hi:.1f}){warning}"
    return f"cannot be told apart from {other} ({points:+.1f} points, 95 % interval {lo:.1f} to {hi:.1f}){warning}"


def sentence(verdict: Mapping[str, Any]) -> str:
    """The verdict in one sentence: the model against the majority answer, then against the reference."""
    text = f"{verdict['model']} {verdict['majority_sentence']}"
    if verdict.get("reference_sentence"):
        text += f"; against the reference it {verdict['reference_sentence']}"
    return text + "."


def wins(verdict: Mapping[str, Any] | None) -> bool:
    """Whether the model beats both answers (the reference only where there is one): what earns a highlight."""
    return bool(verdict and verdict.get("beats_majority") and verdict.get("beats_reference") is not False)


def verdicts(
    rows: list[dict[str, Any]],
    paired: Mapping[str, Any],
    out: Path,
    prepared: Path,
    *,
    folds: int,
    cv_model: str = "",
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """A verdict per study that has one subject: ``cv`` (its model) and ``table2`` (postloc's default model,
    else the best by mean accuracy); a study whose subject has no per-post outcomes gets none."""
    subjects: dict[str, dict[str, Any]] = {}
    for study in ("cv", "table2"):
        done = [
            r for r in rows if r["study"] == study and not r["na"] and (r.get("accuracy") or {}).get("mean") is not None
        ]
        if not done:
            continue
        wanted = cv_model if study == "cv" else DEFAULT_SUBJECT
        named = [r for r in done if r["model"] == wanted]
        subjects[study] = named[0] if named else max(done, key=lambda r: r["accuracy"]["mean"])
    if not subjects:
        return {}
    if not any(all(layout.outcomes_path(out, k).exists() for k in r["keys"]) for r in subjects.values()):
        return {}  # no subject has per-post outcomes (a partial run): the data need not be read
    data = load_prepared(prepared)
    majority = majority_answers(data, out, folds)
    chosen = majority[1]
    name = poi_label(data.pois, max(set(chosen), key=chosen.count)) if chosen else ""
    found = {}
    for study, row in subjects.items():
        pair = paired.get(study) or {}
        reference = pair.get("reference_model") if pair and pair.get("reference") != row["row"] else None
        entry = next((e for e in pair.get("rows", []) if e["row"] == row["row"]), None)
        verdict = decide(row, entry, reference, out, majority, name, seed=seed)
        if verdict is not None:
            found[study] = verdict
    return found
