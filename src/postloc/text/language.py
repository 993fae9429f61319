"""English-only filtering, as the paper did, with a fast offline identifier (py3langid).

py3langid was chosen because it ships its model inside the wheel (works offline), classifies
~60,000 short texts per second on one core, and was right on short social captions in our
checks; langdetect is ~100x slower and raises on emoji-only text, lingua loads ~1 GB.
Texts with too few letters to judge are not dropped: they are returned as ``None`` and the
caller keeps the post and flags it, so hashtag-only and photo-only posts survive.

Only the first :data:`JUDGED_CHARS` characters of a caption are judged: the identifier's cost
grows with the text (about 550 bytes of memory per byte of one caption, 85 s for 5 MB), while
its answer settles within a few hundred letters.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import regex

from postloc.text.normalize import strip_hashtags

#: Characters of a caption that are judged: Instagram's own caption limit (2,200), so a real
#: Instagram caption is judged whole, and any longer text (another source, or a hostile file) by
#: its beginning, which is at least a dozen sentences. It bounds the identifier's work per caption.
JUDGED_CHARS = 2_200
#: Bytes of captions walked through the automaton together: its arrays take about 70 bytes per byte
#: walked, so a chunk of long captions is judged in parts (the answers do not depend on the grouping).
MAX_WALK_BYTES = 4 * 2**20

_LETTERS = regex.compile(r"\p{L}")
_URLS_MENTIONS = regex.compile(r"https?://\S+|@\w+")


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import _load_identifier

    return _load_identifier(norm_probs=True)


def detect_language(text: str, *, min_letters: int = 12) -> tuple[str | None, float]:
    """ISO 639-1 code and confidence of a caption, or ``(None, 0.0)`` when it is too short to judge.

    Hashtags, URLs and @mentions are removed first: they are names, not language. Only the
    first :data:`JUDGED_CHARS` characters are judged.
    """
    body = _URLS_MENTIONS.sub(" ", strip_hashtags(text[:JUDGED_CHARS]))
    if len(_LETTERS.findall(body)) < min_letters:
        return None, 0.0
    lang, prob = _identifier().classify(body)
    return lang, float(prob)


def _judged_part(text: str) -> str:
    """The caption without hashtags, URLs and @mentions (the patterns run only where they can match)."""
    body = strip_hashtags(text)
    return _URLS_MENTIONS.sub(" ", body) if "@" in body or "http" in body else body


_NOT_ASCII_LETTERS = bytes(c for c in range(128) if not chr(c).isalpha())


def _letters(body: str) -> int:
    """How many letters (``\\p{L}``) ``body`` holds; ASCII text is counted without the pattern."""
    if body.isascii():
        return len(body.encode("ascii").translate(None, _NOT_ASCII_LETTERS))
    return len(_LETTERS.findall(body))


@lru_cache(maxsize=1)
def _tables():
    """The identifier's DFA as numpy arrays: next state, row offsets, feature per state."""
    import numpy as np

    ident = _identifier()
    nextmove = np.frombuffer(ident.tk_nextmove, dtype=np.uint32)  # a view: no copy of the 40 MB table
    return nextmove, np.asarray(ident._rowbase, dtype=np.int64), np.asarray(ident.tk_output, dtype=np.int64)


def unload() -> None:
    """Let go of the identifier's model (about 75 MB resident) until a later call loads it again.

    ``prepare`` judges every caption first and then runs its relational steps, which need the
    memory more than a model that will not be used again in that run.
    """
    _identifier.cache_clear()
    _tables.cache_clear()


_KEY_BITS = 63  # of a packed sort key (an int64 that stays positive)


def detect_languages(texts: list[str], *, min_letters: int = 12) -> list[tuple[str | None, float]]:
    """:func:`detect_language` over many captions at once; the same answers, bit for bit.

    py3langid walks each caption's bytes through its feature automaton in a Python loop (most
    of its time). Here the walk runs for all captions together, one numpy step per byte
    position; each caption's features are then counted in first-seen order and scored with
    py3langid's own expression, so scores and ties come out exactly as ``classify`` gives them.
    """
    import numpy as np

    answers: list[tuple[str | None, float]] = [(None, 0.0)] * len(texts)
    bodies: list[bytes] = []
    judged: list[int] = []
    for i, text in enumerate(texts):
        body = _judged_part(text[:JUDGED_CHARS])
        if _letters(body) < min_letters:
            continue
        if body.isupper():  # py3langid's own encoding of a text
            body = body.lower()
        bodies.append(unicodedata.normalize("NFC", body).encode("utf8", errors="surrogatepass"))
        judged.append(i)
    if not bodies:
        return answers
    nextmove, rowbase, output = _tables()
    ident = _identifier()
    # packed sort keys (below): bits for the byte position, the feature and the caption
    pos_bits, feature_bits = max(map(len, bodies)).bit_length(), len(ident.nb_ptc).bit_length()
    too_wide = pos_bits + feature_bits + len(bodies).bit_length() > _KEY_BITS  # never at prepare's chunk sizes
    if (too_wide or sum(map(len, bodies)) > MAX_WALK_BYTES) and len(texts) > 1:
        half = len(texts) // 2
        return detect_languages(texts[:half], min_letters=min_letters) + detect_languages(
            texts[half:], min_letters=min_letters
        )
    lengths = np.fromiter(map(len, bodies), dtype=np.int64, count=len(bodies))
    order = np.argsort(-lengths, kind="stable")  # longest first: the live captions are a prefix
    data = np.frombuffer(b"".join(bodies[k] for k in order), dtype=np.uint8)
    starts = np.concatenate(([0], np.cumsum(lengths[order])[:-1]))
    sorted_lengths = lengths[order]
    state = np.zeros(len(bodies), dtype=np.int64)
    hit_text, hit_pos, hit_feature = [], [], []
    for pos in range(int(sorted_lengths[0])):
        live = int(np.searchsorted(-sorted_lengths, -pos, side="left"))  # captions longer than pos
        state[:live] = nextmove[rowbase[state[:live]] + data[starts[:live] + pos]]
        feature = output[state[:live]]
        found = np.flatnonzero(feature >= 0)
        if len(found):
            hit_text.append(found.astype(np.int32))  # small types: a chunk has ~1 hit per byte
            hit_pos.append(np.full(len(found), pos, dtype=np.int32))
            hit_feature.append(feature[found].astype(np.int32))
    texts_of = np.concatenate(hit_text) if hit_text else np.zeros(0, np.int32)
    positions = np.concatenate(hit_pos) if hit_pos else np.zeros(0, np.int32)
    features = np.concatenate(hit_feature) if hit_feature else np.zeros(0, np.int32)
    del hit_text, hit_pos, hit_feature
    # count each (caption, feature) pair, then order the pairs by where the feature first appeared;
    # each order is one sort of a packed int64 key (caption | feature | position), not a lexsort
    t64, f64, p64 = texts_of.astype(np.int64), features.astype(np.int64), positions.astype(np.int64)
    pair = np.argsort((t64 << (feature_bits + pos_bits)) | (f64 << pos_bits) | p64)
    t, f, p = texts_of[pair], features[pair], positions[pair]
    new = np.ones(len(pair), dtype=bool)
    new[1:] = (t[1:] != t[:-1]) | (f[1:] != f[:-1])
    heads = np.flatnonzero(new)
    counts = np.diff(np.append(heads, len(pair)))
    t, f, p = t[heads], f[heads], p[heads]
    first = np.argsort((t.astype(np.int64) << pos_bits) | p.astype(np.int64))
    t, f, counts = t[first], f[first].astype(np.intp), counts[first].astype(np.float32)
    bounds = np.searchsorted(t, np.arange(len(bodies) + 1))
    raw = np.zeros((len(bodies), len(ident.nb_classes)), dtype=np.float32)  # featureless: 0.0, as py3langid
    weights = np.log1p(counts)
    # the chunk's rows of the float16 table, cast to float32 once (the cast is exact, and it is
    # what ``float32 @ float16`` does inside numpy for every caption otherwise)
    used, local = np.unique(f, return_inverse=True)
    table = ident.nb_ptc[used].astype(np.float32)
    for row in np.flatnonzero(bounds[1:] > bounds[:-1]).tolist():
        lo, hi = bounds[row], bounds[row + 1]
        raw[row] = weights[lo:hi] @ table[local[lo:hi]] + ident.nb_pc  # py3langid's expression
    for answer, k in zip(_decide_rows(ident, raw, lengths[order]), order.tolist(), strict=True):
        answers[judged[k]] = answer
    return answers


def _decide_rows(ident, scores, n_bytes) -> list[tuple[str, float]]:
    """py3langid's ``_decide`` and ``classify`` after the raw scores, one row per caption.

    Each step is elementwise or per row (max, pairwise sum, argmax), so every row gets the
    same float32 numbers that py3langid computes for it alone.
    """
    import math

    import numpy as np

    factor = np.array([1.0 / math.sqrt(int(n) or 1) for n in n_bytes], dtype=np.float32)
    scores *= factor[:, None]
    scores -= scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=1, keepdims=True)
    for i, j in ident._alias_pairs:
        scores[:, i] += scores[:, j]
        scores[:, j] = 0.0
    best = scores.argmax(axis=1)
    confidence = scores[np.arange(len(scores)), best].tolist()
    answers = []
    for b, conf in zip(best.tolist(), confidence, strict=True):
        if ident.min_confidence is not None and conf < ident.min_confidence:
            answers.append(("und", conf))
        else:
            answers.append((ident.nb_classes[b], conf))
    return answers
