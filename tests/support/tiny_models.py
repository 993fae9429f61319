"""Sizes of the tiny MRLF the tests train, and the easy synthetic data they train on: small enough for
seconds on two cores, one copy for all tests.

benchmarks/bench_distributed.py mirrors these (its seed-noise measurement backs the tolerance of
tests/nn/test_distributed.py): keep them in step.
"""

SMALL = {
    "filters": 16,
    "heads": 2,
    "char_dim": 8,
    "word_dim": 8,
    "hidden": 16,
    "max_text_chars": 64,
    "max_hashtag_chars": 48,
    "max_text_words": 16,
}

#: the data most tests train on (``dataclasses.replace`` it for their size and seed): 4 POIs, captions
#: and hashtags that carry the place, separable 8-wide image vectors
EASY_DATA = {
    "n_pois": 4,
    "text_signal": 0.35,
    "tag_signal": 0.6,
    "image_separation": 1.5,
    "caption_words": (3, 8),
    "image_dim": 8,
}
