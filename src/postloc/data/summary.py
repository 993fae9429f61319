"""The Table-I-style summary of a prepared dataset (posts, users, POIs, share with each modality)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from postloc.data.splits import SPLITS

_FUNNEL_ORDER = (
    "read",
    "skipped_bad",
    "dropped_language",
    "dropped_duplicate",
    "dropped_no_poi_label",
    "dropped_no_coordinates",
    "dropped_outside_pois",
    "dropped_empty",
    "dropped_small_poi",
    "kept",
)


def _stats(posts: pd.DataFrame) -> dict[str, Any]:
    n = len(posts)
    with_text = int((posts["text"].str.len() > 0).sum())
    with_tags = int(posts["hashtags"].map(len).gt(0).sum())
    with_images = int(posts["image"].map(lambda v: v is not None and len(v) > 0).sum())
    return {
        "posts": n,
        "users": int(posts["user"].nunique()),
        "pois": int(posts["poi"].nunique()),
        "posts_with_text": with_text,
        "posts_with_hashtags": with_tags,
        "posts_with_images": with_images,
        "share_text": with_text / n if n else 0.0,
        "share_hashtags": with_tags / n if n else 0.0,
        "share_images": with_images / n if n else 0.0,
    }


def build_summary(posts: pd.DataFrame, funnel: Mapping[str, int], n_vocabulary: int) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "all": _stats(posts),
        "hashtag_vocabulary": n_vocabulary,
        "funnel": {k: int(funnel.get(k, 0)) for k in _FUNNEL_ORDER},
    }
    summary["funnel"]["pois_dropped"] = int(funnel.get("pois_dropped", 0))
    for split in SPLITS:
        summary[split] = _stats(posts[posts["split"] == split])
    return summary


def summary_markdown(summary: Mapping[str, Any]) -> str:
    columns = ("all",) + SPLITS
    rows = [
        ("#Posts", "posts", None),
        ("#Users", "users", None),
        ("#Locations (POIs)", "pois", None),
        ("#Posts with images", "posts_with_images", "share_images"),
        ("#Posts with hashtags", "posts_with_hashtags", "share_hashtags"),
        ("#Posts with text", "posts_with_text", "share_text"),
    ]
    lines = ["| | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for label, key, share in rows:
        cells = []
        for column in columns:
            stats = summary[column]
            cell = f"{stats[key]:,}"
            if share:
                cell += f" ({stats[share]:.0%})"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append(f"| Hashtag vocabulary (kept) | {summary['hashtag_vocabulary']:,} |" + " |" * (len(columns) - 1))
    funnel = summary["funnel"]
    lines += ["", "| step | posts |", "|---|---:|"]
    lines += [
        f"| {key.replace('_', ' ')} | {value:,} |" for key, value in funnel.items() if value or key in ("read", "kept")
    ]
    return "\n".join(lines) + "\n"
