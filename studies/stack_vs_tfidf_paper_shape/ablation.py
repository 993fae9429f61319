"""Why ``stack`` trails tfidf-logreg on the SYNTHETIC paper-shaped corpus: one change of ``stack`` per row.

    python studies/stack_vs_tfidf_paper_shape/ablation.py PREPARED --out DIR [--folds 5] [--only 0,1]
    python studies/stack_vs_tfidf_paper_shape/ablation.py PREPARED --out DIR --facts [--compare OTHER ...]

Fits each variant of :data:`VARIANTS` (and tfidf-logreg, once per fold) on the experiments'
user-disjoint folds (``postloc.experiments.fold_frames.user_folds``, seed 0: the folds
``postloc crossval`` uses), scores the test users' posts, and writes ``DIR/ablation.{json,md}``:
accuracy and mean km per variant, the paired accuracy difference to tfidf-logreg (t-interval over
folds, bootstrap over users), and the accuracy on posts of light and heavy users apart (the
question is whether the per-user weights cost the heavy users' posts). Each (variant, fold) is kept
in ``DIR/cells/`` and reused, so an interrupted run resumes. The models are fitted through their
Python API (the same code ``postloc crossval`` runs), scored with :func:`postloc.metrics.post_errors`.

``--facts`` trains nothing: it writes ``DIR/facts.{json,md}``, for PREPARED and each ``--compare``
folder (e.g. Dresden), what the per-user weights do there: the share of posts by heavy users, the
effective sample size under ``1/sqrt(n)`` weights, and how often a post repeats the text and tags of
another post of the same user (a heavy user's posts that are near-copies carry less than their count).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from postloc.experiments.fold_frames import folds_parser

#: label -> (model, params); row 0 is the default model, every later stack row changes one thing
VARIANTS: dict[str, tuple[str, dict]] = {
    "tfidf-logreg (reference)": ("tfidf-logreg", {}),
    "stack (default)": ("stack", {}),
    "without user weights (power 0)": ("stack", {"user_weight_power": 0.0}),
    "words learner only (no chars, no combiner)": ("stack", {"learners": ["words"]}),
    "chars learner only": ("stack", {"learners": ["chars"]}),
    "C etc. on an 18% user sample (c_sample_posts 3600, as at 137k)": ("stack", {"c_sample_posts": 3600}),
    "without context (each post alone)": ("stack", {"context": "none"}),
    "2 inner folds (not 4)": ("stack", {"inner_folds": 2}),
    "power 0 and no context": ("stack", {"user_weight_power": 0.0, "context": "none"}),
    "tfidf-logreg with word bigrams": ("tfidf-logreg", {"ngram_max": 2}),
}

#: a user with more posts than this (in the whole prepared set) counts as heavy in the breakdown
HEAVY = 50


def main() -> None:
    parser = folds_parser(__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated row numbers of VARIANTS (default: all)")
    parser.add_argument("--facts", action="store_true", help="write DIR/facts.{json,md} (no training) and stop")
    parser.add_argument("--compare", type=Path, nargs="*", default=[], help="more prepared folders for --facts")
    args = parser.parse_args()
    if args.facts:
        write_facts(args.out, [args.prepared, *args.compare])
        return
    only = {int(i) for i in args.only.split(",") if i.strip()}
    cells = args.out / "cells"
    cells.mkdir(parents=True, exist_ok=True)
    load_before = [round(x, 2) for x in os.getloadavg()]
    from postloc.data.prepared import load_prepared
    from postloc.experiments.fold_frames import user_folds

    prepared = load_prepared(args.prepared)
    user_posts = prepared.posts["user"].astype(str).value_counts()
    for frames in user_folds(args.prepared, args.folds):
        for i, (label, (model, params)) in enumerate(VARIANTS.items()):
            if only and i not in only:
                continue
            path = cells / f"v{i}-fold{frames.k}.parquet"
            if path.exists():
                continue
            started = time.perf_counter()
            outcome = fit_and_score(model, params, frames, prepared.pois)
            seconds = time.perf_counter() - started
            outcome["n_user"] = frames.test["user"].astype(str).map(user_posts).to_numpy()
            outcome.attrs = {}
            outcome.to_parquet(path)
            (cells / f"v{i}-fold{frames.k}.json").write_text(json.dumps({"seconds": round(seconds, 1)}) + "\n")
            print(f"fold {frames.k} {label}: acc {outcome['correct'].mean():.4f}, {seconds:.0f} s", flush=True)
    summarise(args, cells, load_before)


def fit_and_score(model: str, params: dict, frames, pois: pd.DataFrame) -> pd.DataFrame:
    """Fit ``model`` on the fold's train (+ val), predict its test posts all at once (the same user's
    posts are each other's context, as in ``postloc evaluate``); one row per test post."""
    from postloc.metrics import post_errors
    from postloc.models.registry import create_model

    estimator = create_model(model, params)
    estimator.fit(frames.train, frames.val, classes=frames.classes)
    proba = estimator.predict_proba(frames.test)
    truth, predicted, km, _ = post_errors(proba, frames.classes, frames.test, pois)
    return pd.DataFrame(
        {
            "id": frames.test["id"].astype(str).to_numpy(),
            "user": frames.test["user"].astype(str).to_numpy(),
            "correct": (truth == predicted).astype(float),
            "km": km,
            "fold": frames.k,
        }
    )


def summarise(args, cells: Path, load_before: list[float]) -> None:
    """The table (Markdown + JSON) of every variant with all folds done."""
    from postloc.experiments.cv import bootstrap_interval, t_interval

    def read(i: int) -> pd.DataFrame | None:
        parts = [cells / f"v{i}-fold{k}.parquet" for k in range(args.folds)]
        if not all(p.exists() for p in parts):
            return None
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)

    def seconds(i: int) -> float:
        return sum(json.loads((cells / f"v{i}-fold{k}.json").read_text())["seconds"] for k in range(args.folds))

    reference = read(0)
    if reference is None:
        raise SystemExit("the reference (row 0, tfidf-logreg) is not done on every fold")
    rows: list[dict[str, Any]] = []
    for i, (label, (model, params)) in enumerate(VARIANTS.items()):
        frame = read(i)
        if frame is None:
            continue
        both = frame.merge(reference, on="id", suffixes=("", "_ref"))
        per_fold = frame.groupby("fold")["correct"].mean()
        diffs = (both.groupby("fold")["correct"].mean() - both.groupby("fold")["correct_ref"].mean()).to_numpy()
        heavy = frame["n_user"] > HEAVY
        boot = bootstrap_interval(both["user"].to_numpy(), (both["correct"] - both["correct_ref"]).to_numpy())
        rows.append(
            {
                "row": i,
                "variant": label,
                "model": model,
                "params": params,
                "accuracy": float(per_fold.mean()),
                "accuracy_std": float(per_fold.std(ddof=1)),
                "accuracy_per_fold": [round(float(v), 4) for v in per_fold],
                "mean_km": float(frame.groupby("fold")["km"].mean().mean()),
                "d_acc": float(np.mean(diffs)),
                "d_acc_t": list(t_interval(list(diffs))),
                "d_acc_boot": list(boot),
                "acc_light_users": float(frame.loc[~heavy, "correct"].mean()),
                "acc_heavy_users": float(frame.loc[heavy, "correct"].mean()) if heavy.any() else None,
                "heavy_share": float(heavy.mean()),
                "fit_seconds_all_folds": round(seconds(i), 1),
            }
        )
    machine = {
        "cpu": platform.machine(),
        "cores": os.cpu_count(),
        "gpu": "none",
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    payload = {"synthetic": True, "prepared": str(args.prepared), "folds": args.folds, "heavy_user_posts": HEAVY}
    payload |= {"commit": commit, "machine": machine, "rows": rows}
    lines = [
        f"# stack vs tfidf-logreg, one change per row (SYNTHETIC, the paper's New York shape; {args.folds} user folds)",
        "",
        f"Data: `{args.prepared}` (SYNTHETIC). Commit {commit}. Machine: {machine['cpu']}, {machine['cores']} cores, "
        f"no GPU, shared; load average before {load_before}, after {machine['load_average_after']}.",
        f"Heavy users: more than {HEAVY} posts in the prepared set. Δacc: paired, against tfidf-logreg on the same "
        "test posts (t-interval over folds; bootstrap over users).",
        "",
        "| # | variant | accuracy | Δacc vs tfidf-logreg | t interval | bootstrap | mean km "
        "| acc light users | acc heavy users | fit s (all folds) |",
        "|---:|---|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        heavy_acc = "-" if r["acc_heavy_users"] is None else f"{r['acc_heavy_users']:.3f}"
        lines.append(
            f"| {r['row']} | {r['variant']} | {r['accuracy']:.4f} ± {r['accuracy_std']:.4f} | {r['d_acc']:+.4f} | "
            f"{_iv(r['d_acc_t'])} | {_iv(r['d_acc_boot'])} | {r['mean_km']:.3f} | {r['acc_light_users']:.3f} | "
            f"{heavy_acc} | {r['fit_seconds_all_folds']} |"
        )
    lines += ["", f"Share of test posts by heavy users: {rows[0]['heavy_share']:.0%}."]
    (args.out / "ablation.md").write_text("\n".join(lines) + "\n")
    (args.out / "ablation.json").write_text(json.dumps(payload, indent=2) + "\n")
    print("\n".join(lines))


def data_facts(prepared: Path) -> dict:
    """What the per-user weights do on ``prepared``: heavy users' share, effective size, repeated posts."""
    from postloc.data.prepared import load_prepared

    posts = load_prepared(prepared).posts
    users = posts["user"].astype(str)
    n = users.map(users.value_counts()).to_numpy(dtype=float)
    weights = n**-0.5
    text = posts["text"].fillna("").astype(str).str.lower()
    tags = posts["hashtags"].map(lambda t: " ".join(sorted(t)) if t is not None and len(t) else "")
    repeated = (text + "|" + tags).groupby(users).transform(lambda s: s.duplicated(keep=False)).to_numpy()
    heavy = n > HEAVY
    top = posts.groupby(users)["poi"].transform(lambda s: (s == s.value_counts().index[0]).mean()).to_numpy()
    return {
        "prepared": str(prepared),
        "posts": int(len(posts)),
        "users": int(users.nunique()),
        "largest_user_share": float(users.value_counts().iloc[0] / len(posts)),
        "heavy_users_post_share": float(heavy.mean()),
        "effective_posts_share_at_power_0.5": float(weights.sum() ** 2 / (weights**2).sum() / len(posts)),
        "heavy_users_weight_share_at_power_0.5": float(weights[heavy].sum() / weights.sum()),
        "repeated_text_and_tags_heavy": float(repeated[heavy].mean()) if heavy.any() else None,
        "repeated_text_and_tags_light": float(repeated[~heavy].mean()),
        "heavy_users_posts_at_their_top_poi": float(top[heavy].mean()) if heavy.any() else None,
    }


def write_facts(out: Path, folders: list[Path]) -> None:
    """``out/facts.{json,md}``: :func:`data_facts` of each folder, one row each."""
    facts = [data_facts(folder) for folder in folders]
    out.mkdir(parents=True, exist_ok=True)
    (out / "facts.json").write_text(json.dumps(facts, indent=2) + "\n")
    lines = [
        "# What the per-user weights meet (no training)",
        "",
        f"Heavy users: more than {HEAVY} posts. Repeated: the post's lower-cased text and sorted tags equal those "
        "of another post of the same user. Effective posts: (Σw)² / Σw² with w = 1/sqrt(n_user), as a share of posts.",
        "",
        "| prepared | posts | users | largest user | heavy users' posts | their weight at power 0.5 "
        "| effective posts | repeated (heavy / light) | heavy users' posts at their top POI |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for f in facts:
        lines.append(
            f"| `{f['prepared']}` | {f['posts']:,} | {f['users']:,} | {f['largest_user_share']:.0%} | "
            f"{f['heavy_users_post_share']:.0%} | {f['heavy_users_weight_share_at_power_0.5']:.0%} | "
            f"{f['effective_posts_share_at_power_0.5']:.0%} | {_pct(f['repeated_text_and_tags_heavy'])} / "
            f"{_pct(f['repeated_text_and_tags_light'])} | {_pct(f['heavy_users_posts_at_their_top_poi'])} |"
        )
    (out / "facts.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _iv(interval: list | None) -> str:
    if not interval or interval[0] is None:
        return "n/a"
    return f"[{interval[0]:+.4f}, {interval[1]:+.4f}]"


if __name__ == "__main__":
    main()
