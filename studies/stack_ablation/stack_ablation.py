"""Ablation of ``stack`` over user-disjoint folds: what each of its choices is worth against tfidf-logreg.

    python studies/stack_ablation/stack_ablation.py PREPARED --out DIR [--folds 5] [--only 0,6]

Runs ``postloc crossval`` (the experiments' fold machinery, the same folds for every row) once per
variant, each paired with tfidf-logreg on the same test posts, and writes ``DIR/ablation.md`` and
``DIR/ablation.json``: accuracy and mean km (mean ± std over folds) and the paired accuracy
difference to tfidf-logreg with its 95 % t-interval over folds and bootstrap interval over users.
Finished variants are reused (each is a resumable experiment folder). With ``--only 0,6`` (and
``0,6,7``) it answers studies/stack_context's question too; docs/winning-model.md quotes both.
"""

from __future__ import annotations

import json
from pathlib import Path

from postloc.experiments.fold_frames import folds_parser

#: label -> stack params; each row changes one thing of the default (the first row)
VARIANTS: dict[str, dict] = {
    "stack (default)": {},
    "without user weights (power 0)": {"user_weight_power": 0.0},
    "users alike (power 1)": {"user_weight_power": 1.0},
    "without refit on train+val": {"refit_on_val": False},
    "C chosen on the val posts (not out of fold)": {"c_selection": "val"},
    "without out-of-fold weights (weights 1)": {"inner_folds": 0},
    "without same-day context (each post alone)": {"context": "none"},
    "same-day context only (context day)": {"context": "day"},
}


def main() -> None:
    from postloc.experiments import ExperimentConfig, run_experiments

    parser = folds_parser(__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated row numbers of VARIANTS to run (default: all)")
    parser.add_argument("--facts", action="store_true", help="print the data's facts (no training) and stop")
    args = parser.parse_args()
    if args.facts:
        print(json.dumps(data_facts(args.prepared), indent=2))
        return
    only = {int(i) for i in args.only.split(",") if i.strip()}
    rows: list[dict] = []
    first = None  # the first row run: every other row is also paired with it
    for i, (label, params) in enumerate(VARIANTS.items()):
        if only and i not in only:
            continue
        config = ExperimentConfig(
            studies=("cv",),
            folds=args.folds,
            seeds=(0,),
            cv_model="stack",
            cv_params=params,
            cv_reference="tfidf-logreg",
            threads=1,
            progress=False,
        )
        results = run_experiments(args.prepared, args.out / f"variant-{i}", config)
        row = next(r for r in results["rows"] if r["model"] == "stack")
        paired = next(p for p in results["paired"]["cv"]["rows"] if p["model"] == "stack")
        if first is None:
            first = (row, args.out / f"variant-{i}")
        rows.append(
            {
                "variant": label,
                "params": params,
                "accuracy": row["accuracy"],
                "mean_km": row["mean_km"],
                "d_acc": paired["d_acc"],
                "d_acc_t": paired["d_acc_t"],
                "d_acc_boot": paired["d_acc_boot"],
                "d_km": paired["d_km"],
                "vs_first": paired_rows(first, (row, args.out / f"variant-{i}"), args.prepared),
            }
        )
        print(f"{label}: acc {row['accuracy']['mean']:.3f}, vs tfidf-logreg {paired['d_acc']:+.3f}", flush=True)
    reference = next(r for r in results["rows"] if r["model"] == "tfidf-logreg")
    facts = data_facts(args.prepared)
    lines = [
        f"# stack ablation on `{Path(args.prepared).name}` ({args.folds} user-disjoint folds)",
        "",
        f"Data: {facts['posts']:,} posts by {facts['users']:,} users; the largest user has "
        f"{facts['largest_user_posts']:,} posts ({facts['largest_user_share']:.0%}); "
        f"{facts['only_top_tags_share']:.0%} of the posts carry only tags among the {TOP_TAGS} most used "
        f"({', '.join(facts['top_tags'])}).",
        "",
        f"Same user, same day: {facts['with_same_day_neighbour']:.0%} of the posts share a user and a calendar day "
        "with another post"
        + (
            f"; two such posts are at the same POI {facts['same_day_pairs_same_poi']:.0%} of the time, and a vote "
            f"of the neighbours' true POIs would place {facts['neighbour_vote_accuracy']:.0%} of them "
            "(an upper bound on what the context could reach; the rule sees only predictions)."
            if facts["same_day_pairs_same_poi"] is not None
            else "."
        )
        + (
            f" Two posts of one user on different days are at the same POI {facts['other_day_pairs_same_poi']:.0%}"
            f" of the time (two posts drawn at random: {facts['random_pairs_same_poi']:.0%})."
            if facts.get("other_day_pairs_same_poi") is not None
            else ""
        ),
        "",
        f"tfidf-logreg on the same folds: accuracy {_ms(reference['accuracy'])}, mean km {_ms(reference['mean_km'])}.",
        "",
        "| variant | accuracy | Δacc vs tfidf-logreg | t interval | bootstrap interval | mean km | Δkm |"
        f" Δacc vs {rows[0]['variant']} (t; bootstrap) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        v = r["vs_first"]
        vs_first = "–" if v is None else f"{v['d_acc']:+.3f} ({_iv(v['d_acc_t'])}; {_iv(v['d_acc_boot'])})"
        lines.append(
            f"| {r['variant']} | {_ms(r['accuracy'])} | {r['d_acc']:+.3f} | {_iv(r['d_acc_t'])} | "
            f"{_iv(r['d_acc_boot'])} | {_ms(r['mean_km'])} | {r['d_km']:+.3f} | {vs_first} |"
        )
    (args.out / "ablation.md").write_text("\n".join(lines) + "\n")
    (args.out / "ablation.json").write_text(
        json.dumps({"data": facts, "reference": reference, "rows": rows}, indent=2) + "\n"
    )
    print(f"wrote {args.out}/ablation.md")


def paired_rows(first: tuple[dict, Path], this: tuple[dict, Path], prepared: Path) -> dict | None:
    """``this`` row minus the ``first`` one on the same posts: accuracy, t-interval over folds, bootstrap over users.

    None for the first row itself. Both ran on the same folds (same prepared folder, same fold seed).
    """
    import numpy as np

    from postloc.data.prepared import load_prepared
    from postloc.experiments.cv import bootstrap_interval, read_outcomes, t_interval

    (row_a, out_a), (row_b, out_b) = first, this
    if out_a == out_b:
        return None
    a_folds, b_folds = row_a["accuracy"]["per_fold"], row_b["accuracy"]["per_fold"]
    diffs = [b_folds[f] - a_folds[f] for f in sorted(set(a_folds) & set(b_folds))]
    a, b = read_outcomes(out_a, row_a["keys"]), read_outcomes(out_b, row_b["keys"])
    boot = None
    if a is not None and b is not None:
        both = b.merge(a, left_index=True, right_index=True, suffixes=("_b", "_a"))
        posts = load_prepared(prepared).posts
        users = dict(zip(posts["id"].astype(str), posts["user"].astype(str), strict=True))
        owner = both.index.map(lambda i: users.get(i, f"\0post:{i}")).to_numpy()
        boot = list(bootstrap_interval(owner, (both["correct_b"] - both["correct_a"]).to_numpy(dtype=float)))
    return {"d_acc": float(np.mean(diffs)), "d_acc_t": list(t_interval(diffs)), "d_acc_boot": boot}


#: the "generic" tags of a data set: its most used ones (on Dresden: the city, country and region names)
TOP_TAGS = 8


def data_facts(prepared: Path) -> dict:
    """How concentrated the posts are in a few users, and how many say nothing beyond the top tags."""
    from collections import Counter

    from postloc.data.prepared import load_prepared

    posts = load_prepared(prepared).posts
    users = posts["user"].value_counts()
    counts = Counter(t for tags in posts["hashtags"] for t in tags)
    top = {t for t, _ in counts.most_common(TOP_TAGS)}
    only_top = posts["hashtags"].map(lambda tags: len(tags) > 0 and set(tags) <= top)
    return {
        "posts": int(len(posts)),
        "users": int(len(users)),
        "largest_user_posts": int(users.iloc[0]) if len(users) else 0,
        "largest_user_share": float(users.iloc[0] / len(posts)) if len(users) else 0.0,
        "top_tags": [t for t, _ in counts.most_common(TOP_TAGS)],
        "only_top_tags_share": float(only_top.mean()) if len(posts) else 0.0,
        **same_day_facts(posts),
    }


def same_day_facts(posts) -> dict:
    """How much a user's other posts of the same day say (on the labels: what the context rule could reach)."""
    import numpy as np

    from postloc.models.user_context import context_groups

    groups = context_groups(posts, "day")
    if groups is None:
        return {"with_same_day_neighbour": 0.0, "same_day_pairs_same_poi": None, "neighbour_vote_accuracy": None}
    has = groups >= 0
    frame = posts.loc[has, ["poi"]].assign(group=groups[has])
    counts = frame.groupby(["group", "poi"]).size()
    sizes = frame.groupby("group").size()
    same_pairs = float((counts * (counts - 1)).sum() / (sizes * (sizes - 1)).sum())
    # leave-one-out vote of the neighbours' true POIs (ties: the first in sorted order)
    hits = []
    for _, members in frame.groupby("group")["poi"]:
        tally = members.value_counts()
        for poi in members:
            rest = tally.copy()
            rest[poi] -= 1
            rest = rest[rest > 0].sort_index()
            hits.append(bool(len(rest)) and rest.idxmax() == poi)
    # pairs of one user's posts on different days (or undated): all of the user's pairs less the same-day ones
    users = posts.loc[posts["user"].notna(), ["user", "poi"]]
    user_counts = users.groupby(["user", "poi"]).size()
    user_sizes = users.groupby("user").size()
    other_same = float((user_counts * (user_counts - 1)).sum() - (counts * (counts - 1)).sum())
    other_all = float((user_sizes * (user_sizes - 1)).sum() - (sizes * (sizes - 1)).sum())
    return {
        "with_same_day_neighbour": float(has.mean()),
        "same_day_pairs_same_poi": same_pairs,
        "neighbour_vote_accuracy": float(np.mean(hits)),
        "other_day_pairs_same_poi": other_same / other_all if other_all > 0 else None,
        # two posts drawn at random (any users): the level at which a neighbour says nothing
        "random_pairs_same_poi": float((posts["poi"].value_counts(normalize=True) ** 2).sum()),
    }


def _ms(stat: dict) -> str:
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def _iv(interval: list | None) -> str:
    if not interval or interval[0] is None:
        return "n/a"
    return f"[{interval[0]:+.3f}, {interval[1]:+.3f}]"


if __name__ == "__main__":
    main()
