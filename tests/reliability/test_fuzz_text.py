"""Fuzz the tokenisers: any Unicode (controls, RTL, zero-width, lone surrogates) and 1 MB captions.

Each function of :mod:`postloc.text` must give a well-formed answer for every string and stay
linear: a 1 MB caption is tokenised in well under the time limit.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fuzz_strategies import budget, huge_text, nasty_text, time_limit
from postloc.text.language import detect_language
from postloc.text.normalize import (
    extract_hashtags,
    match_key,
    normalize_hashtags,
    normalize_text,
    strip_hashtags,
    tokenize,
)
from postloc.text.vocab import UNK_ID, Vocabulary, chars, hashtag_string


def check_text_functions(text: str) -> None:
    """The invariants of every text function on one input."""
    normal = normalize_text(text)
    assert normal == normal.strip() and "  " not in normal
    assert not any(c in normal for c in "\n\t\r")

    tags = extract_hashtags(text)
    nfkc = unicodedata.normalize("NFKC", text)
    assert all(tag and "#" + tag in nfkc for tag in tags)
    assert all(not any(c.isspace() for c in tag) for tag in tags)

    stripped = strip_hashtags(text)
    assert stripped == stripped.strip()

    tokens = tokenize(text)
    assert all(isinstance(t, str) and t and not any(c.isspace() for c in t) for t in tokens)
    assert all(t == t.casefold() for t in tokens)

    keys = normalize_hashtags(tags + [text[:50]])
    assert len(keys) == len(set(keys)) and all(keys) and all(k == match_key(k) for k in keys)

    language, confidence = detect_language(text)
    assert (language, confidence) == (None, 0.0) or (isinstance(language, str) and 0.0 <= confidence <= 1.0)

    vocabulary = Vocabulary.build([tokens, chars(text)])
    ids = vocabulary.encode(tokens, 32)
    assert len(ids) == min(32, len(tokens)) and all(UNK_ID <= i < len(vocabulary) for i in ids)
    assert Vocabulary.from_dict(vocabulary.to_dict()).tokens == vocabulary.tokens
    assert all(UNK_ID <= i < len(vocabulary) for i in vocabulary.encode(chars(hashtag_string(tags)), 16))


@given(text=nasty_text(200))
@example(text="\ud800#\udfff tag")
@example(text="#\u200b#\u202e\U0001f1e9\U0001f1ea##x")
@example(text="\x00" * 10 + "#a" + "\u0301" * 50)
def test_any_unicode(text):
    with time_limit(10):
        check_text_functions(text)


@given(text=st.text(st.characters(codec=None), max_size=300))
def test_any_code_points(text):
    with time_limit(10):
        check_text_functions(text)


@pytest.mark.slow  # megabyte captions through every text function: 5 s here under load
@settings(max_examples=budget(0.25))
@given(text=huge_text())
def test_one_megabyte_caption_is_linear(text):
    """1 MB of words, emoji, hashtags or bidi/zero-width clutter: every function well within 20 s."""
    with time_limit(20):
        check_text_functions(text)
