"""Why does a model win or lose on a data set? Prediction concentration, user dominance, generic tags.

On the Dresden sample MRLF loses to TF-IDF + logistic regression. Three suspects can be measured
from test predictions alone: (1) predictions pile onto a few POIs (the model falls back on the
class prior); (2) POIs whose training posts come mostly from one prolific user teach tags that
are that user's habits, not the place's; (3) posts whose tags are all generic city tags
(``dresden``, ``germany``, ...) carry no place signal. ``diagnose`` reports accuracy per group
for each model, so the comparison says *where* one model loses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from postloc.io.escape import md_text


def generic_tags(train: pd.DataFrame, top: int = 10) -> set[str]:
    """Tags used by the most distinct POIs in training (they say "this city", not "this place")."""
    spread: Counter[str] = Counter()
    for _, group in train.groupby("poi"):
        spread.update({t for tags in group["hashtags"] for t in tags})
    return {t for t, _ in spread.most_common(top)}


def user_dominance(train: pd.DataFrame) -> pd.Series:
    """Per POI: share of its training posts written by its most prolific user."""
    return train.groupby("poi")["user"].agg(lambda users: users.value_counts().iloc[0] / len(users))


def diagnose(
    train: pd.DataFrame,
    test: pd.DataFrame,
    predictions: Mapping[str, np.ndarray],
    classes: list[str],
    dominance_cut: float = 0.5,
) -> dict[str, Any]:
    """Accuracy per group and prediction concentration, for each model's ``proba`` over ``classes``."""
    generic = generic_tags(train)
    dominance = user_dominance(train)
    truth = test["poi"].astype(str).to_numpy()
    all_generic = test["hashtags"].map(lambda tags: len(tags) > 0 and set(tags) <= generic).to_numpy()
    dominated = test["poi"].map(dominance).fillna(0).to_numpy() > dominance_cut
    prior_top = Counter(train["poi"].astype(str)).most_common(3)
    out: dict[str, Any] = {
        "generic_tags": sorted(generic),
        "test_posts": int(len(test)),
        "share_all_generic": float(all_generic.mean()),
        "share_dominated_poi": float(dominated.mean()),
        "dominated_pois": sorted(p for p, d in dominance.items() if d > dominance_cut),
        "largest_train_pois": [[p, n] for p, n in prior_top],
        "models": {},
    }
    for name, proba in predictions.items():
        pred = np.asarray(classes)[np.asarray(proba).argmax(axis=1)]
        ok = pred == truth
        counts = Counter(pred)
        top_poi, top_n = counts.most_common(1)[0]
        out["models"][name] = {
            "accuracy": float(ok.mean()),
            "acc_all_generic_posts": float(ok[all_generic].mean()) if all_generic.any() else None,
            "acc_other_posts": float(ok[~all_generic].mean()) if (~all_generic).any() else None,
            "acc_dominated_pois": float(ok[dominated].mean()) if dominated.any() else None,
            "acc_other_pois": float(ok[~dominated].mean()) if (~dominated).any() else None,
            "most_predicted_poi": top_poi,
            "its_share_of_predictions": top_n / len(pred),
            "its_share_of_truth": float((truth == top_poi).mean()),
            "distinct_pois_predicted": len(counts),
        }
    return out


def markdown(report: Mapping[str, Any]) -> str:
    lines = [
        f"- generic tags (used at the most POIs in training): {', '.join(map(md_text, report['generic_tags']))}",
        f"- test posts whose tags are all generic: {report['share_all_generic']:.1%}",
        f"- test posts at POIs where one user wrote > 50 % of the training posts: "
        f"{report['share_dominated_poi']:.1%} ({len(report['dominated_pois'])} POIs)",
        "",
        "| model | Acc | Acc, all-generic posts | Acc, other posts | Acc, user-dominated POIs | Acc, other POIs | "
        "most predicted POI: share of predictions / of truth | POIs predicted |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def f(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    for name, m in report["models"].items():
        lines.append(
            f"| {md_text(name)} | {f(m['accuracy'])} | {f(m['acc_all_generic_posts'])} | {f(m['acc_other_posts'])} | "
            f"{f(m['acc_dominated_pois'])} | {f(m['acc_other_pois'])} | "
            f"{m['its_share_of_predictions']:.1%} / {m['its_share_of_truth']:.1%} | {m['distinct_pois_predicted']} |"
        )
    return "\n".join(lines) + "\n"
