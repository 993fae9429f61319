"""Posts of three POIs (harbour, castle, garden) and quickstart settings shared by the quickstart and map tests."""

from __future__ import annotations

import json
from pathlib import Path

from postloc.data.schema import Post
from postloc.quickstart import QuickstartConfig

WORDS = {
    "harbor": ("harbour", "boats", "pier"),
    "castle": ("castle", "towers", "walls"),
    "garden": ("garden", "roses", "fountain"),
}


CENTRES = {"harbor": (51.05, 13.73), "castle": (51.06, 13.75), "garden": (51.04, 13.77)}


def three_poi_posts(n_per_poi: int = 30, users: int = 15, text: str | None = None, lang_words=None) -> list[Post]:
    posts = []
    for p, (poi, words) in enumerate(WORDS.items()):
        for i in range(n_per_poi):
            caption = (
                text or f"A sunny day at the {words[i % 3]} with friends, we loved the {words[(i + 1) % 3]} (day {i})"
            )
            lat, lon = CENTRES[poi]
            posts.append(
                Post(
                    id=f"{poi}-{i}",
                    text=caption,
                    hashtags=[words[i % 3], "city"],
                    poi=poi,
                    lat=lat + 0.0001 * (i % 5),
                    lon=lon,
                    user=f"u{(i + p) % users}",
                )
            )
    return posts


def write_jsonl(posts: list[Post], path: Path, *, poison: bool = False) -> Path:
    with path.open("w") as handle:
        for post in posts:
            record = {
                "id": post.id,
                "text": post.text,
                "hashtags": post.hashtags,
                "poi": post.poi,
                "lat": post.lat,
                "lon": post.lon,
                "user": post.user,
            }
            handle.write(json.dumps(record) + "\n")
        if poison:
            handle.write("{not json\n")
    return path


def quickstart_config(**changes) -> QuickstartConfig:
    base = dict(quick=True, progress=False, images=False, model="tfidf-logreg")
    base.update(changes)
    return QuickstartConfig(**base)
