"""The fast paths of ``prepare`` give what the plain code gives (docs/scale-prepare.md, performance).

Speed is measured in benchmarks/bench_prepare_outofcore.py; here only equality is checked.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from postloc.data.schema import resolve_image
from postloc.text.language import detect_language, detect_languages

CAPTIONS = [
    "Sunset at the bridge with friends, what a day #sunset #dresden",
    "Das ist ein schöner Tag in Dresden am Elbufer mit Freunden",
    "WHAT A LOUD CAPTION ABOUT THE OLD TOWN TONIGHT",
    "ÀÉÎ ÖÜ ÇA VA BIEN AUJOURD'HUI MES AMIS",
    "日本語のテキストはここにあります東京タワーの夜景がきれい",
    "Привет из Москвы, прекрасный вечер на Красной площади",
    "check https://example.com/x?y=1 and @someone for the best coffee in town",
    "🌉🗽 #nyc #love",
    "hi there",
    "",
    "a" * 3000,
    "mixed ñandú y pingüino en la Patagonia argentina hoy",
    "\ud800 a lone surrogate inside an otherwise English caption text",
]


@pytest.mark.parametrize("min_letters", [0, 12, 40])
def test_detect_languages_equals_one_at_a_time(min_letters):
    assert detect_languages(CAPTIONS, min_letters=min_letters) == [
        detect_language(text, min_letters=min_letters) for text in CAPTIONS
    ]
    assert detect_languages([]) == []


def test_detect_languages_splits_when_sort_keys_do_not_pack(monkeypatch):
    """Many long captions whose packed keys would overflow an int64 are judged in halves, same answers."""
    from postloc.text import language

    expected = detect_languages(CAPTIONS)
    monkeypatch.setattr(language, "_KEY_BITS", 30)  # 12 bits of position + 17 of feature + 4 of caption
    assert detect_languages(CAPTIONS) == expected


def test_ascii_hashtag_patterns_match_the_unicode_ones():
    """ASCII text takes the standard-library patterns and skips NFKC: same tags, text and keys as the Unicode path."""
    import random
    import unicodedata

    from postloc.text import normalize

    rng = random.Random(0)
    alphabet = "ab Z9_#&\t\n\x0b\x0c\r\x1c\x1f-'.,@!A"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))) for _ in range(20000)]
    texts += [chr(c) + "#" + chr(c) + "x #y" + chr(c) for c in range(128)]
    for text in texts:
        assert normalize._ASCII_HASHTAG_RE.findall(text) == normalize._HASHTAG_RE.findall(text), repr(text)
        assert normalize._collapsed_ascii(text) == normalize._SPACE_RE.sub(" ", text).strip(), repr(text)
        assert normalize.normalize_text(text) == normalize._SPACE_RE.sub(" ", text).strip(), repr(text)
        unicode_strip = normalize._SPACE_RE.sub(" ", normalize._HASHTAG_RE.sub(" ", text)).strip()
        assert normalize.strip_hashtags(text) == unicode_strip, repr(text)
        expected_keys = normalize.normalize_hashtags(normalize.extract_hashtags(text))
        assert normalize.caption_hashtag_keys(text) == expected_keys, repr(text)
        assert normalize.match_key(text) == unicodedata.normalize("NFKC", text).casefold().lstrip("#"), repr(text)
    assert normalize.extract_hashtags("＃ｆｕｌｌ #a#b") == ["full", "a", "b"]  # NFKC still applies


def test_resolve_image_equals_path_resolve(tmp_path):
    base = tmp_path / "in"
    (base / "img" / "sub").mkdir(parents=True)
    (base / "img" / "a.jpg").write_bytes(b"")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "b.jpg").write_bytes(b"")
    os.symlink(tmp_path / "elsewhere", base / "linked")  # a linked folder
    os.symlink(tmp_path / "elsewhere" / "b.jpg", base / "img" / "link.jpg")  # a linked file
    os.symlink(base / "img" / "loop", base / "img" / "loop")  # a loop, resolved leniently
    paths = [
        "img/a.jpg",
        "img/missing.jpg",
        "img//a.jpg",
        "./img/a.jpg",
        "img/./a.jpg",
        "img/sub/../a.jpg",
        "linked/b.jpg",
        "linked/../img/a.jpg",
        "img/link.jpg",
        "img/.",
        "img/..",
        "img/",
        "top.jpg",
        "no/such/folder/c.jpg",
    ]
    folders: dict = {}
    for _ in range(2):  # the second pass hits the cache
        for path in paths:
            assert resolve_image(str(base), path, folders) == str((base / path).resolve()), path
    with pytest.raises(RuntimeError):
        (base / "img" / "loop").resolve()
    with pytest.raises(RuntimeError):
        resolve_image(str(base), "img/loop", folders)


def test_resolve_image_relative_base(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "img").mkdir()
    folders: dict = {}
    assert resolve_image("img", "a.jpg", folders) == str(Path("img/a.jpg").resolve())


def test_memory_is_given_back_only_after_a_large_input():
    """The language model is unloaded after a large input only, and loads again when next needed."""
    from postloc.data.prepare.steps import RELEASE_FROM_POSTS, release_cleaning_memory
    from postloc.text import language

    expected = detect_languages(CAPTIONS)
    release_cleaning_memory(RELEASE_FROM_POSTS - 1)
    assert language._identifier.cache_info().currsize == 1  # a small input keeps it: reloading costs ~0.5 s
    release_cleaning_memory(RELEASE_FROM_POSTS)
    assert language._identifier.cache_info().currsize == 0 and language._tables.cache_info().currsize == 0
    assert detect_languages(CAPTIONS) == expected
