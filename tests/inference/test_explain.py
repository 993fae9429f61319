"""Occlusion explanations: a planted decisive hashtag must come out on top."""

from __future__ import annotations

import numpy as np
import pytest

from postloc.inference.explain import MAX_PARTS, explain, explain_row, occlusions
from postloc.inference.predictor import load
from serve_support import decisive_tag, small_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return small_run(tmp_path_factory)


def test_planted_hashtag_gets_the_largest_contribution(run):
    predictor = load(run)
    tag, poi = decisive_tag(run)
    result = explain(predictor, {"text": "a quiet morning with friends", "hashtags": [tag, "neverseen"]})
    assert result.target_poi == poi
    top = result.contributions[0]
    assert (top.kind, top.token) == ("hashtag", tag)
    assert top.contribution > 0.1 and top.contribution > 3 * max(abs(c.contribution) for c in result.contributions[1:])
    assert result.ignored_hashtags == ["neverseen"]
    assert "hashtag" in result.table() and tag in result.table()


def test_caption_hashtag_is_one_part_and_removed_from_the_caption_too(run):
    predictor = load(run)
    tag, _ = decisive_tag(run)
    result = explain(predictor, {"text": f"lovely #{tag} lovely view"})
    parts = [(c.kind, c.token) for c in result.contributions]
    assert sorted(parts) == sorted([("hashtag", tag), ("word", "lovely"), ("word", "view")])
    assert result.contributions[0].token == tag


def test_variants_and_one_model_call():
    row = {"id": "x", "text": "a b a #t", "hashtags": ["t"], "image_vector": np.zeros(3, np.float32)}
    parts, variants, truncated = occlusions(row)
    assert parts == [("word", "a"), ("word", "b"), ("hashtag", "t"), ("image", "image")] and not truncated
    assert variants[0]["text"] == "b #t" and variants[2] == {**row, "text": "a b a", "hashtags": []}
    assert variants[3]["image_vector"] is None
    calls = []

    def proba(rows):
        calls.append(len(rows))
        out = np.full((len(rows), 2), 0.5)
        out[0] = [0.9, 0.1]
        out[3] = [0.2, 0.8]  # without the hashtag the other class wins
        return out

    result = explain_row(row, proba, ["p", "q"])
    assert calls == [5]
    assert result.contributions[0].token == "t" and result.contributions[0].top_poi_without == "q"
    assert abs(result.contributions[0].contribution - 0.7) < 1e-9


def test_parts_are_capped():
    row = {"id": "x", "text": " ".join(f"w{i}" for i in range(MAX_PARTS + 10)), "hashtags": [], "image_vector": None}
    parts, variants, truncated = occlusions(row)
    assert len(parts) == len(variants) == MAX_PARTS and truncated


def test_empty_post_has_no_parts(run):
    result = explain(load(run), {"text": ""})
    assert result.contributions == [] and "nothing to remove" in result.table()
