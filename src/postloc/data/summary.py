"""The Table-I-style summary of a prepared dataset (posts, users, POIs, share with each modality)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from postloc.data.pois import merge_message
from postloc.data.splits import SPLITS

FUNNEL_ORDER = (
    "read",
    "skipped_bad",
    "dropped_language",
    "kept_hashtags_name_place",
    "dropped_duplicate",
    "dropped_no_poi_label",
    "dropped_no_coordinates",
    "dropped_outside_pois",
    "dropped_empty",
    "dropped_small_poi",
    "kept",
)


def split_stats(posts: int, users: int, pois: int, with_text: int, with_tags: int, with_images: int) -> dict[str, Any]:
    """One column of the summary from its counts (both prepare engines count them their own way)."""
    return {
        "posts": posts,
        "users": users,
        "pois": pois,
        "posts_with_text": with_text,
        "posts_with_hashtags": with_tags,
        "posts_with_images": with_images,
        "share_text": with_text / posts if posts else 0.0,
        "share_hashtags": with_tags / posts if posts else 0.0,
        "share_images": with_images / posts if posts else 0.0,
    }


#: how a funnel step reads in summary.md, where its key alone would not say it
FUNNEL_LABELS = {"kept_hashtags_name_place": "kept: hashtags name a place"}


def assemble_summary(
    stats_of: Callable[[str | None], dict[str, Any]],
    funnel: Mapping[str, int],
    n_vocabulary: int,
    n_place_hashtags: int = 0,
) -> dict[str, Any]:
    """The summary from ``stats_of(split)`` (``None``: all posts), the funnel and the vocabulary size
    (``n_place_hashtags`` of its tags are below ``--min-hashtag-count``, kept because they name a POI)."""
    summary: dict[str, Any] = {
        "all": stats_of(None),
        "hashtag_vocabulary": n_vocabulary,
        "hashtag_vocabulary_place_names": n_place_hashtags,
        "funnel": {k: int(funnel.get(k, 0)) for k in FUNNEL_ORDER},
    }
    summary["funnel"]["pois_dropped"] = int(funnel.get("pois_dropped", 0))
    for split in SPLITS:
        summary[split] = stats_of(split)
    return summary


def _stats(posts: pd.DataFrame) -> dict[str, Any]:
    return split_stats(
        len(posts),
        int(posts["user"].nunique()),
        int(posts["poi"].nunique()),
        int(posts["has_text"].sum()),
        int(posts["has_hashtags"].sum()),
        int(posts["has_image"].sum()),
    )


def build_summary(
    posts: pd.DataFrame, funnel: Mapping[str, int], n_vocabulary: int, n_place_hashtags: int = 0
) -> dict[str, Any]:
    """The summary of prepared ``posts`` held in a DataFrame (the memory engine): one row per post
    with ``user``, ``poi``, ``split`` and the booleans ``has_text``, ``has_hashtags``, ``has_image``."""
    return assemble_summary(
        lambda split: _stats(posts if split is None else posts[posts["split"] == split]),
        funnel,
        n_vocabulary,
        n_place_hashtags,
    )


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
    vocabulary = f"{summary['hashtag_vocabulary']:,}"
    if summary.get("hashtag_vocabulary_place_names"):
        vocabulary += f" ({summary['hashtag_vocabulary_place_names']:,} below the count, kept: they name a POI)"
    lines.append(f"| Hashtag vocabulary (kept) | {vocabulary} |" + " |" * (len(columns) - 1))
    funnel = summary["funnel"]
    lines += ["", "| step | posts |", "|---|---:|"]
    lines += [
        f"| {FUNNEL_LABELS.get(key, key.replace('_', ' '))} | {value:,} |"
        for key, value in funnel.items()
        if value or key in ("read", "kept")
    ]
    lines += label_lines(summary)
    return "\n".join(lines) + "\n"


def label_lines(summary: Mapping[str, Any]) -> list[str]:
    """How many posts name their place, when not all do, and the near-duplicate place names merged."""
    lines = []
    labelled = summary.get("labelled_posts")
    if labelled:
        n, total = labelled["labelled"], labelled["posts"]
        lines += [
            "",
            f"{n:,} of {total:,} posts name a place: the POIs come from those; the other {total - n:,} are not "
            "trained on (`postloc predict` places them)",
        ]
    merges = summary.get("poi_merges") or []
    if merges:
        lines += ["", "Place names merged (one place, several spellings):", ""]
        lines += [f"- {merge_message(merge)}" for merge in merges]
    return lines
