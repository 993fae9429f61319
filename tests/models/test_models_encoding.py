"""Vocabularies, encoding of posts into arrays, and the image-feature contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from postloc.data.image_features import (
    IMAGE_COLUMN,
    attach_image_features,
    image_matrix,
    load_image_features,
    write_image_features,
)
from postloc.errors import PostlocError
from postloc.models.mrlf.config import MRLFConfig
from postloc.models.mrlf.encoding import Vocabularies, encode_posts
from postloc.text.vocab import PAD_ID, UNK_ID, Vocabulary, hashtag_string


def test_vocabulary_order_unknown_and_round_trip():
    vocab = Vocabulary.build([["b", "a", "b"], ["c", "a", "b"]], min_count=2)
    assert vocab.tokens == ["<pad>", "<unk>", "b", "a"]  # by count, then alphabetically; c is too rare
    assert vocab.encode(["a", "c", "b"], max_len=2) == [3, UNK_ID]
    assert Vocabulary.from_dict(vocab.to_dict()).index == vocab.index
    assert "a" in vocab and "c" not in vocab and "<pad>" not in vocab
    assert Vocabulary.build([["x", "y", "z"]], max_size=3).tokens == ["<pad>", "<unk>", "x"]
    assert hashtag_string(["eiffel", "paris"]) == "#eiffel #paris"


def _posts():
    return pd.DataFrame(
        {
            "id": ["1", "2", "3"],
            "text": ["Hello Paris!", "", "hello hello"],
            "hashtags": [["paris", "travel"], [], ["paris"]],
            "poi": ["p", "q", "p"],
            IMAGE_COLUMN: [np.ones(3, np.float32), None, np.zeros(3, np.float32)],
        }
    )


def test_encode_posts_shapes_masks_and_cut():
    config = MRLFConfig(
        max_text_chars=20,
        max_hashtag_chars=16,
        max_text_words=4,
        max_hashtags=3,
        char_min_count=1,
        word_min_count=1,
        char_pool=4,
    )
    posts = _posts()
    vocabs = Vocabularies.build(posts, config)
    assert "paris" in vocabs.hashtags and "hello" in vocabs.words
    encoded = encode_posts(posts, vocabs, config, image_dim=3, classes=["p", "q"])
    assert encoded.text_chars.shape == (3, 20) and encoded.tags.shape == (3, 3)
    assert encoded.y.tolist() == [0, 1, 0]
    assert encoded.image_present.tolist() == [True, False, True]
    assert (encoded.text_chars[1] == PAD_ID).all() and (encoded.tags[1] == PAD_ID).all()
    batch = encoded.batch(np.array([1]))  # the empty post alone: widths shrink to the minimum
    assert batch["text_chars"].shape == (1, 4)  # one pool window
    assert batch["tags"].shape == (1, 1)
    full = encoded.batch(np.arange(3))
    assert full["text_chars"].shape[1] % 4 == 0 and full["text_chars"].shape[1] >= len("hello paris!")
    assert full["tag_chars"].shape[1] == 16  # "#paris #travel" is 14 chars, rounded up to the pool
    assert encoded.lengths().tolist()[1] == 0


def test_encode_unknown_label_and_unseen_tokens():
    config = MRLFConfig(char_min_count=1, word_min_count=1)
    vocabs = Vocabularies.build(_posts(), config)
    other = pd.DataFrame({"id": ["9"], "text": ["zzz"], "hashtags": [["neverseen"]], "poi": ["elsewhere"]})
    encoded = encode_posts(other, vocabs, config, image_dim=0, classes=["p", "q"])
    assert encoded.y.tolist() == [-1]
    assert encoded.tags[0, 0] == UNK_ID
    assert encoded.image.shape == (1, 0)


def test_image_features_contract_round_trip(tmp_path):
    assert load_image_features(tmp_path) is None
    matrix = np.arange(6, dtype=np.float32).reshape(2, 3)
    write_image_features(tmp_path, ["a", "c"], matrix)
    ids, loaded = load_image_features(tmp_path)
    assert ids == ["a", "c"] and loaded.dtype == np.float32 and np.array_equal(loaded, matrix)
    posts = attach_image_features(pd.DataFrame({"id": ["a", "b", "c"]}), (ids, loaded))
    vectors, present = image_matrix(posts, 3)
    assert present.tolist() == [True, False, True]
    assert np.array_equal(vectors[2], matrix[1]) and not vectors[1].any()
    with pytest.raises(PostlocError, match="length 3"):
        image_matrix(posts, 4)


def test_image_features_rejects_ragged_vectors(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["a", "b"], "vector": [[1.0, 2.0], [1.0]]}), tmp_path / "image_features.parquet")
    with pytest.raises(PostlocError, match="one length"):
        load_image_features(tmp_path)
