"""The paper's cleaning steps as small, separately testable pieces."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from postloc.text.normalize import match_key


def count_hashtags(hashtag_lists: Iterable[list[str]]) -> Counter:
    """Number of posts using each hashtag (a tag repeated within a post counts once)."""
    counts: Counter = Counter()
    for tags in hashtag_lists:
        counts.update(set(tags))
    return counts


def frequent_hashtags(counts: Counter, min_count: int) -> set[str]:
    """Hashtags used by at least ``min_count`` posts (paper: 50). ``min_count <= 1`` keeps all."""
    return {tag for tag, n in counts.items() if n >= min_count}


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
