"""The paper's cleaning steps as small, separately testable pieces."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping

from postloc.text.names import names_place
from postloc.text.normalize import match_key


def count_hashtags(hashtag_lists: Iterable[list[str]]) -> Counter:
    """Number of posts using each hashtag (a tag repeated within a post counts once)."""
    counts: Counter = Counter()
    for tags in hashtag_lists:
        counts.update(set(tags))
    return counts


def frequent_hashtags(counts: Counter, min_count: int, places: Collection[str] = ()) -> set[str]:
    """Hashtags used by at least ``min_count`` posts (paper: 50), and every one that names a place.

    ``places`` are :func:`postloc.text.names.place_keys` of the POI table (its labels and names):
    ``#perth`` or ``#flindersstreetstation`` is the evidence for a label, so it stays whatever its
    count. That uses the table of POIs, not any post's own label (docs/data.md). ``min_count <= 1``
    keeps all.
    """
    return {tag for tag, n in counts.items() if n >= min_count or names_place(tag, places)}


def place_hashtags(tags: Iterable[str], places: Collection[str]) -> list[str]:
    """The tags among ``tags`` that name a place of ``places`` (sorted): what the count alone would drop."""
    return sorted({tag for tag in tags if names_place(tag, places)})


def passing_pois(posts: Mapping[str, int], users: Mapping[str, int], min_posts: int, min_users: int) -> set[str]:
    """POIs with at least ``min_posts`` posts and ``min_users`` users: the one rule of prepare's small-POI
    filter (both engines) and of quickstart's prediction of it, so the two cannot disagree."""
    return {poi for poi, n in posts.items() if n >= min_posts and users.get(poi, 0) >= min_users}


def duplicate_key(user: str | None, text: str, hashtags: list[str], place: str | None) -> tuple | None:
    """Key under which reposts collapse: same user, same text and tags, same place.

    A post with neither text nor hashtags has nothing to compare (its photo differs from the
    next one), and a post without a user cannot be told apart from another person's: both
    return ``None`` and are never treated as duplicates.
    """
    if user is None or (not text and not hashtags):
        return None
    return (user, match_key(text), tuple(sorted(hashtags)), place)


def place_key(poi: str | None, lat: float | None, lon: float | None) -> str | None:
    """The label when there is one, else coordinates rounded to ~10 m."""
    if poi is not None:
        return f"poi:{poi}"
    if lat is not None and lon is not None:
        return f"{lat:.4f},{lon:.4f}"
    return None
