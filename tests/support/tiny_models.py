"""Sizes of the tiny MRLF the tests train: small enough for seconds on two cores, one copy for all tests.

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
