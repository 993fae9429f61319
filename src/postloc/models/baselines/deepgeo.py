"""DeepGeo (Lau et al. 2017, jhlau/twitter-deepgeo): character-level BiLSTM with attention.

The original reads a tweet's text character by character (hashtags are part of a tweet's
text), runs a bidirectional LSTM, pools the states with learned attention, and classifies into
cities. Here the input is the caption followed by the post's hashtags as ``#tag`` words, so the
model sees what a tweet would have shown; on hashtag-only data (Dresden) it reads the tags. The
original's metadata branches (time zone, user location, ...) have no counterpart in the
prepared posts and are left out. Kept small (CPU): 32-d characters, 32 units per direction, 140 characters.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from postloc.models.base import ModelInputs
from postloc.models.baselines.neural import ArrayData, PriorHead, post_tags, post_texts
from postloc.models.registry import register
from postloc.models.torch_estimator import TorchEstimator
from postloc.settings import check_ranges

#: what a config (or an edited model.json) may ask for; refused on load past it
RANGES = {
    "max_chars": (1, 100_000),
    "char_min_count": (1, 10**9),
    "char_dim": (1, 4_096),
    "hidden": (1, 4_096),
    "attention": (1, 4_096),
    "dropout": (0, 0.99),
}


@dataclass(frozen=True)
class DeepGeoConfig:
    max_chars: int = 140  # a classic tweet, what DeepGeo was built for; LSTM cost grows with it
    char_min_count: int = 2
    char_dim: int = 32
    hidden: int = 32  # per direction (the original: 100+; kept small for 2 CPU cores)
    attention: int = 32
    dropout: float = 0.3

    def __post_init__(self) -> None:
        check_ranges(self, RANGES)


def char_string(text: str, tags: list[str]) -> str:
    """Caption then ``#tag`` words, lower-cased: the tweet-like character stream DeepGeo reads."""
    parts = [text.lower()] if text else []
    parts += [f"#{t}" for t in tags]
    return " ".join(parts)


class DeepGeoNet(PriorHead):
    def __init__(self, config: DeepGeoConfig, n_chars: int, n_classes: int):
        super().__init__()
        self.embed = nn.Embedding(n_chars, config.char_dim, padding_idx=0)
        self.lstm = nn.LSTM(config.char_dim, config.hidden, batch_first=True, bidirectional=True)
        self.score = nn.Sequential(
            nn.Linear(2 * config.hidden, config.attention), nn.Tanh(), nn.Linear(config.attention, 1, bias=False)
        )
        self.out = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(2 * config.hidden, n_classes))
        self.init_prior(n_classes)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = batch["chars"]
        mask = ids != 0
        lengths = mask.sum(dim=1)
        present = lengths > 0
        packed = nn.utils.rnn.pack_padded_sequence(
            self.embed(ids), lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        states, _ = self.lstm(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=ids.shape[1])
        scores = self.score(states)[:, :, 0].masked_fill(~mask, float("-inf"))
        scores[:, 0] = torch.where(present, scores[:, 0], torch.zeros_like(scores[:, 0]))
        weights = torch.softmax(scores, dim=1)
        pooled = (weights[:, :, None] * states).sum(dim=1)
        return self.with_prior(self.out(pooled), present)


@register
class DeepGeo(TorchEstimator):
    name = "deepgeo"
    Config = DeepGeoConfig
    requires = ("text|hashtags",)
    quick_params = {"char_dim": 8, "hidden": 8, "attention": 8, "max_chars": 40}

    @property
    def inputs_used(self) -> ModelInputs:
        """The caption and the hashtags (:func:`post_texts`, :func:`post_tags`), no photo."""
        return ModelInputs.reading("text", "hashtags")

    def _strings(self, posts: pd.DataFrame) -> list[str]:
        return [
            char_string(t, g)[: self.config.max_chars] for t, g in zip(post_texts(posts), post_tags(posts), strict=True)
        ]

    def _build_state(self, train: pd.DataFrame) -> dict[str, Any]:
        counts = Counter(c for s in self._strings(train) for c in s)
        chars = sorted(c for c, n in counts.items() if n >= self.config.char_min_count)
        return {"chars": chars}  # id = position + 2 (0 padding, 1 unknown)

    def _build_net(self) -> nn.Module:
        return DeepGeoNet(self.config, len(self.state_["chars"]) + 2, len(self.classes_))

    def _encode(self, posts: pd.DataFrame, y: np.ndarray) -> ArrayData:
        index = {c: i + 2 for i, c in enumerate(self.state_["chars"])}
        strings = self._strings(posts)
        ids = np.zeros((len(strings), self.config.max_chars), dtype=np.int64)
        for r, s in enumerate(strings):
            ids[r, : len(s)] = [index.get(c, 1) for c in s]
        return ArrayData({"chars": ids}, y, cut=("chars",))
