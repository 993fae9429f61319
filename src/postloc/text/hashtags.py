"""A post's hashtags, decided once: the tags it was given, else those written in its caption.

Preparation, prediction, the server and explanations all need the same answer for the same
post, or a model would be trained on one set of tags and asked about another. So the rule
lives here alone: tags given by the source win; a post without them gets the ``#tags`` of its
caption; both are normalised to matching keys (NFKC, case-folded, deduplicated); and, when a
vocabulary is given (the hashtags a model was trained with), cut to it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from postloc.text.normalize import caption_hashtag_keys, normalize_hashtags


def _given(tags: Any) -> list[str]:
    """The given tags as a list of strings; nothing for ``None``, NaN (pandas) or an empty array."""
    if type(tags) is list and all(type(tag) is str for tag in tags):  # what a validated post holds
        return list(tags)
    if tags is None or isinstance(tags, (float, str, bytes)):
        return []
    return [str(t) for t in tags]


def post_hashtags(tags: Any, text: str | None, vocabulary: Collection[str] | None = None) -> list[str]:
    """The matching keys of a post's hashtags (see the module docstring for the rule)."""
    given = _given(tags)
    keys = normalize_hashtags(given) if given else caption_hashtag_keys(text or "")
    if vocabulary is not None:
        keys = [k for k in keys if k in vocabulary]
    return keys


def frame_hashtags(column: Iterable[Any] | None, length: int) -> list[list[str]]:
    """A DataFrame's ``hashtags`` column (lists, arrays, ``None`` or NaN) as lists of strings.

    ``column`` is ``None`` when the frame has no such column: every post then has no tags.
    """
    if column is None:
        return [[] for _ in range(length)]
    return [_given(tags) for tags in column]
