from postloc.text.language import detect_language
from postloc.text.normalize import (
    extract_hashtags,
    match_key,
    normalize_hashtags,
    normalize_text,
    strip_hashtags,
    tokenize,
)


def test_nfkc_and_matching_keys():
    assert normalize_text("  ＮＹＣ\u00a0 is  ﬁne ") == "NYC is fine"
    assert match_key("#Straße") == match_key("STRASSE") == "strasse"


def test_hashtags_extracted_from_text_with_emoji():
    text = "Sunset at the #BrooklynBridge 🌉 with #ＮＹＣ friends #café #🍕 &#39; mail@x.com#no"
    assert extract_hashtags(text) == ["BrooklynBridge", "NYC", "café", "🍕"]
    assert normalize_hashtags(["NYC", "nyc", "#Café"]) == ["nyc", "café"]
    assert strip_hashtags("a #b c") == "a c"


def test_back_to_back_hashtags_are_each_a_tag():
    assert extract_hashtags("#flindersstreetstation#history") == ["flindersstreetstation", "history"]
    assert extract_hashtags("at #Café#Straße_1#🍕#e\u0301te #x_#y") == ["Café", "Straße_1", "🍕", "éte", "x_", "y"]
    assert extract_hashtags("#NYC🗽#night #👍🏽#ok") == ["NYC🗽", "night", "👍🏽", "ok"]
    assert strip_hashtags("old #flinders#history station") == "old station"
    # A '#' after a word that is no hashtag stays no tag: URL fragments, addresses, entities, keycaps.
    text = "see https://ex.com/page#section#sub and mail@x.com#no#more &#39;s #melbourne#\ufe0f\u20e3"
    assert extract_hashtags(text) == ["melbourne"]


def test_tokens_keep_emoji_as_tokens():
    assert tokenize("Great 👍🏽 view of #NYC 🇺🇸, it's fine") == [
        "great",
        "👍🏽",
        "view",
        "of",
        "#nyc",
        "🇺🇸",
        "it's",
        "fine",
    ]


def test_language_identification():
    assert detect_language("Sunset at the bridge with friends, what a day")[0] == "en"
    assert detect_language("Das ist ein schöner Tag in Dresden am Elbufer")[0] == "de"
    # too little to judge: kept by the caller and flagged
    assert detect_language("🌉🗽 #nyc #love") == (None, 0.0)
    assert detect_language("hi there") == (None, 0.0)
