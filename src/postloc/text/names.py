"""Place names as matching tokens, and concatenated hashtags split back into them.

A POI known only by its name ("Flinders Street Station", "Café de Flore") is found in a post by
its words, which posts write in every case and accent style and, in hashtags, squashed together
(``#flindersstreetstation``, ``#cafedeflore``). So names and posts are *folded* the same way:
NFKC (full-width letters, ligatures), accents stripped (NFKD without combining marks: ``é`` -> ``e``,
so ``#cafedeflore`` meets "Café"), case-folded (``Straße`` meets ``STRASSE``), split on anything
that is not a letter or digit.

A squashed hashtag has no spaces to split on, and splitting it with a general dictionary would
invent words; it is segmented only into tokens *of the gazetteer's names* (:func:`segment`), so
``flindersstreetstation`` becomes ``flinders|street|station`` when those words name some POI, and
stays whole otherwise.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Iterable

import regex

_WORD = regex.compile(r"[\p{L}\p{N}]+")
#: a squashed hashtag longer than this is not segmented (the dynamic programme is quadratic in it)
MAX_SEGMENT_CHARS = 100
#: the longest name token tried at one position of a hashtag
MAX_TOKEN_CHARS = 40


def fold(text: str) -> str:
    """NFKC, accents stripped, case-folded: the form names and posts are compared in."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", stripped.casefold())


def name_tokens(text: str) -> list[str]:
    """The folded words of a name or caption, in order (letters and digits; the rest separates)."""
    return _WORD.findall(fold(text))


def squash(text: str) -> str:
    """The folded words written together, as in a hashtag: "Flinders Street Station" -> ``flindersstreetstation``."""
    return "".join(name_tokens(text))


def segment(squashed: str, vocabulary: Collection[str]) -> list[str] | None:
    """``squashed`` cut into the fewest tokens of ``vocabulary`` that spell it exactly, or None.

    Fewest tokens, so that a long name word wins over short ones that also spell it (``harbour``,
    not ``harb|our``); ties go to the cut whose first token is longest. None when no cut exists
    (the hashtag holds a word no name has) or the hashtag is longer than :data:`MAX_SEGMENT_CHARS`.
    """
    n = len(squashed)
    if n == 0 or n > MAX_SEGMENT_CHARS:
        return None
    # best[i]: the fewest tokens spelling squashed[i:], and the length of the first one
    best: list[tuple[int, int] | None] = [None] * (n + 1)
    best[n] = (0, 0)
    for i in range(n - 1, -1, -1):
        for j in range(min(n, i + MAX_TOKEN_CHARS), i, -1):  # longest first: ties keep the longest token
            rest = best[j]
            if rest is not None and squashed[i:j] in vocabulary:
                count = rest[0] + 1
                current = best[i]
                if current is None or count < current[0]:
                    best[i] = (count, j - i)
    if best[0] is None:
        return None
    tokens, i = [], 0
    while i < n:
        step = best[i]
        assert step is not None  # every position on the chosen path has a cut
        tokens.append(squashed[i : i + step[1]])
        i += step[1]
    return tokens


#: a place key shorter than this names nothing a hashtag could be told by (``#a``, ``#uk`` is 2: kept)
MIN_PLACE_KEY_CHARS = 2


def place_keys(names: Iterable[str | None]) -> frozenset[str]:
    """The squashed forms under which a hashtag names one of ``names`` (POI labels and names).

    Each name gives its whole squashed form ("Flinders Street Station" -> ``flindersstreetstation``)
    and that of each comma-separated part ("Brighton Beach, Victoria" -> ``brightonbeach``,
    ``victoria``), so a location name with its region still meets the tag people write. Numbers
    (an Instagram location id used as the label) and keys shorter than :data:`MIN_PLACE_KEY_CHARS`
    name nothing.
    """
    keys: set[str] = set()
    for name in names:
        if not name:
            continue
        parts = str(name).split(",")
        for part in [str(name), *parts] if len(parts) > 1 else [str(name)]:
            key = squash(part)
            if len(key) >= MIN_PLACE_KEY_CHARS and not key.isdigit():
                keys.add(key)
    return frozenset(keys)


def names_place(tag: str, keys: Collection[str]) -> bool:
    """Whether the hashtag key ``tag`` names a place of :func:`place_keys` (``#FlindersStreetStation``, ``#perth``)."""
    return bool(keys) and squash(tag) in keys
