"""The readers' duplicate-id index: the same answers as a dict, in arrays once it grows."""

from __future__ import annotations

import json

import pytest

from postloc.data.readers import read_posts, seen_ids
from postloc.data.readers.seen_ids import SeenIds
from postloc.errors import BadInputError


def test_first_seen_answers_like_a_dict_across_folds(monkeypatch):
    monkeypatch.setattr(seen_ids, "MIN_PENDING", 4)  # fold into the arrays every few ids
    index, reference = SeenIds(), {}
    for n in range(200):
        source, line = f"part-{n % 3}.jsonl", (None if n % 7 == 0 else n + 1)
        post_id = f"post-{n * 7919 % 1000}"
        assert index.first_seen(post_id) == reference.get(post_id)
        if post_id not in reference:
            index.add(post_id, source, line)
            reference[post_id] = (source, line)
    assert len(index) == len(reference) and len(index._hashes) > 100  # most ids live in the arrays
    for post_id, where in reference.items():
        assert index.first_seen(post_id) == where
    assert index.first_seen("never-seen") is None


def test_a_duplicate_far_from_its_first_use_names_both_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(seen_ids, "MIN_PENDING", 8)
    path = tmp_path / "posts.jsonl"
    rows = [{"id": f"p{i}", "text": "hi", "poi": "a"} for i in range(100)] + [{"id": "p3", "text": "again"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(BadInputError, match=rf'"p3" was already used at {path}:4'):
        list(read_posts(path))
