"""From prepared posts to MRLF's integer/float arrays, and from arrays to tensor batches.

Posts are encoded once into fixed-width padded arrays (the config's maximum lengths); each
batch is then cut to its longest row, so a hashtag-only data set does not pay for 280 empty
text characters per post. Cutting is exact: padding never changes a real position's value
(zero embedding, masked attention, masked pooling).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from postloc.data.image_features import image_matrix
from postloc.data.labels import label_indices
from postloc.models.mrlf.config import MRLFConfig
from postloc.text.hashtags import frame_hashtags
from postloc.text.normalize import tokenize
from postloc.text.vocab import PAD_ID, Vocabulary, chars, hashtag_string


@dataclass
class Vocabularies:
    """Characters (shared by text and hashtags), caption words and hashtags; built on training posts."""

    chars: Vocabulary
    words: Vocabulary
    hashtags: Vocabulary

    @classmethod
    def build(cls, posts: pd.DataFrame, config: MRLFConfig) -> Vocabularies:
        texts = [_text(t) for t in posts["text"]]
        tags = [t[: config.max_hashtags] for t in frame_hashtags(posts["hashtags"], len(posts))]
        char_seqs = [chars(t[: config.max_text_chars]) for t in texts]
        char_seqs += [chars(hashtag_string(t)[: config.max_hashtag_chars]) for t in tags]
        return cls(
            chars=Vocabulary.build(char_seqs, min_count=config.char_min_count),
            words=Vocabulary.build(
                (tokenize(t)[: config.max_text_words] for t in texts),
                min_count=config.word_min_count,
                max_size=config.max_words,
            ),
            hashtags=Vocabulary.build(tags, min_count=1, max_size=config.max_hashtag_vocab),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"chars": self.chars.to_dict(), "words": self.words.to_dict(), "hashtags": self.hashtags.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vocabularies:
        return cls(*(Vocabulary.from_dict(data[k]) for k in ("chars", "words", "hashtags")))


@dataclass
class EncodedPosts:
    """Padded id arrays per input, image vectors with presence flags, and labels (-1: unknown)."""

    text_chars: np.ndarray
    tag_chars: np.ndarray
    text_words: np.ndarray
    tags: np.ndarray
    image: np.ndarray
    image_present: np.ndarray
    y: np.ndarray
    char_pool: int = 1

    def __len__(self) -> int:
        return len(self.y)

    def lengths(self) -> np.ndarray:
        """Real (non-padding) characters per post: what a batch's cost grows with."""
        return (self.text_chars != PAD_ID).sum(axis=1) + (self.tag_chars != PAD_ID).sum(axis=1)

    def groups(self) -> np.ndarray:
        """Which inputs each post has, as bits (text, hashtags, image): batches of one group skip absent branches."""
        has_text = (self.text_chars != PAD_ID).any(axis=1) | (self.text_words != PAD_ID).any(axis=1)
        has_tags = (self.tag_chars != PAD_ID).any(axis=1) | (self.tags != PAD_ID).any(axis=1)
        return has_text.astype(np.int64) | has_tags.astype(np.int64) << 1 | self.image_present.astype(np.int64) << 2

    def batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        """Tensors for the posts at ``index``, sequences cut to the longest row of the batch."""
        out = {
            "text_chars": _cut(self.text_chars[index], self.char_pool),
            "tag_chars": _cut(self.tag_chars[index], self.char_pool),
            "text_words": _cut(self.text_words[index], 1),
            "tags": _cut(self.tags[index], 1),
            "image": torch.from_numpy(self.image[index]),
            "image_present": torch.from_numpy(self.image_present[index]),
            "y": torch.from_numpy(self.y[index]),
        }
        return out


def encode_posts(
    posts: pd.DataFrame, vocabs: Vocabularies, config: MRLFConfig, image_dim: int, classes: Sequence[str] | None = None
) -> EncodedPosts:
    """Encode a DataFrame of prepared posts (``text``, ``hashtags``, optional ``image_vector``, ``poi``)."""
    texts = [_text(t) for t in posts["text"]] if "text" in posts else [""] * len(posts)
    tag_lists = [t[: config.max_hashtags] for t in frame_hashtags(posts.get("hashtags"), len(posts))]
    text_chars = _pad([vocabs.chars.encode(chars(t), config.max_text_chars) for t in texts], config.max_text_chars)
    tag_chars = _pad(
        [vocabs.chars.encode(chars(hashtag_string(t)), config.max_hashtag_chars) for t in tag_lists],
        config.max_hashtag_chars,
    )
    text_words = _pad([vocabs.words.encode(tokenize(t), config.max_text_words) for t in texts], config.max_text_words)
    tags = _pad([vocabs.hashtags.encode(t, config.max_hashtags) for t in tag_lists], config.max_hashtags)
    image, present = image_matrix(posts, image_dim)
    if classes is not None and "poi" in posts:
        y = label_indices(posts["poi"], classes)
    else:
        y = np.full(len(posts), -1, dtype=np.int64)
    return EncodedPosts(text_chars, tag_chars, text_words, tags, image, present, y, config.char_pool)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _pad(rows: Iterable[list[int]], width: int) -> np.ndarray:
    rows = list(rows)
    out = np.full((len(rows), width), PAD_ID, dtype=np.int32)  # int32 halves memory on big sets
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _cut(ids: np.ndarray, multiple: int) -> torch.Tensor:
    """Drop all-padding columns at the end, keeping a width that is a positive multiple of ``multiple``."""
    used = (ids != PAD_ID).any(axis=0)
    width = int(np.nonzero(used)[0].max()) + 1 if used.any() else 1
    width = -(-width // multiple) * multiple
    if width > ids.shape[1]:
        pad = np.full((ids.shape[0], width - ids.shape[1]), PAD_ID, dtype=ids.dtype)
        ids = np.concatenate([ids, pad], axis=1)
    return torch.from_numpy(np.ascontiguousarray(ids[:, :width])).long()
