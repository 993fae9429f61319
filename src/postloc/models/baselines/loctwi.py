"""LocTwi-style subword model: fastText's bag of hashed character n-grams, mean pooled, linear.

Subword (character n-gram) embeddings make misspelt or unseen place words share most of their
features with the right ones; averaging them and one linear layer is fastText's classifier,
which is fast and strong on short texts. Tokens are caption words and ``#hashtag`` words; each
token contributes itself plus its ``<token>`` character 3- to 5-grams, hashed into ``buckets``
rows (the hashing trick, so no n-gram vocabulary is stored; a stable FNV-1a hash keeps saved
models valid across Python runs, unlike ``hash()``).
"""

from __future__ import annotations

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
from postloc.text.normalize import tokenize

#: what a config (or an edited model.json) may ask for; refused on load past it
RANGES = {
    "buckets": (1, 10_000_000),
    "dim": (1, 4_096),
    "min_n": (1, 32),
    "max_n": (1, 32),
    "max_features": (1, 100_000),
    "dropout": (0, 0.99),
}


@dataclass(frozen=True)
class LocTwiConfig:
    buckets: int = 50_021  # a prime; 3.2 M weights at dim 64
    dim: int = 64
    min_n: int = 3
    max_n: int = 5
    max_features: int = 400  # hashed features per post
    dropout: float = 0.2

    def __post_init__(self) -> None:
        check_ranges(self, RANGES)


def fnv1a(text: str) -> int:
    """32-bit FNV-1a: a hash that is the same in every process (``hash()`` is salted per run)."""
    value = 0x811C9DC5
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def subword_features(token: str, min_n: int, max_n: int) -> list[str]:
    """The token itself and its character n-grams with ``<``/``>`` boundary marks (fastText)."""
    marked = f"<{token}>"
    grams = [token]
    for n in range(min_n, max_n + 1):
        grams += [marked[i : i + n] for i in range(len(marked) - n + 1)]
    return grams


class LocTwiNet(PriorHead):
    def __init__(self, config: LocTwiConfig, n_classes: int):
        super().__init__()
        self.embed = nn.EmbeddingBag(config.buckets + 1, config.dim, mode="mean", padding_idx=0)
        self.out = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.dim, n_classes))
        self.init_prior(n_classes)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = batch["grams"]
        present = (ids != 0).any(dim=1)
        return self.with_prior(self.out(self.embed(ids)), present)


@register
class LocTwi(TorchEstimator):
    name = "loctwi"
    Config = LocTwiConfig
    requires = ("text|hashtags",)
    quick_params = {"buckets": 1009, "dim": 8}

    @property
    def inputs_used(self) -> ModelInputs:
        """The caption and the hashtags (:func:`post_texts`, :func:`post_tags`), no photo."""
        return ModelInputs.reading("text", "hashtags")

    def _build_state(self, train: pd.DataFrame) -> dict[str, Any]:
        return {}

    def _build_net(self) -> nn.Module:
        return LocTwiNet(self.config, len(self.classes_))

    def _encode(self, posts: pd.DataFrame, y: np.ndarray) -> ArrayData:
        cfg = self.config
        ids = np.zeros((len(posts), cfg.max_features), dtype=np.int64)
        cache: dict[str, list[int]] = {}
        for r, (text, tags) in enumerate(zip(post_texts(posts), post_tags(posts), strict=True)):
            row: list[int] = []
            for token in tokenize(text) + [f"#{t}" for t in tags]:
                if token not in cache:
                    cache[token] = [fnv1a(g) % cfg.buckets + 1 for g in subword_features(token, cfg.min_n, cfg.max_n)]
                row += cache[token]
            row = row[: cfg.max_features]
            ids[r, : len(row)] = row
        return ArrayData({"grams": ids}, y, cut=("grams",))
