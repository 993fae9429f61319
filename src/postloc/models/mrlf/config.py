"""Hyperparameters of MRLF, including the numbers the paper's Sec. IV-A lost.

Every default is argued in docs/mrlf.md; the short reasons are next to each field. Variants of
the paper (Fig. 2 ablation, Fig. 3 fusion study) are two fields: ``modalities`` and ``fusion``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from postloc.errors import PostlocError
from postloc.settings import check_ranges

MODALITIES = ("text", "hashtags", "image")

#: fusion variant -> the two inputs its attention fuses (None: no attention fusion)
FUSIONS = {
    "mrlf": ("text", "hashtags"),  # early: character-level conv outputs attend to each other (eqs. 6-8)
    "text-tag-end": ("text", "hashtags"),  # late: after each branch has pooled its own features
    "concat": None,  # plain concatenation of branch representations (eq. 9 without fusion)
    "image-text": ("image", "text"),  # early: image token <-> text characters
    "image-hashtag": ("image", "hashtags"),  # early: image token <-> hashtag characters
}


#: Sizes a config may ask for: at least 1, and at most what a CPU model could hold (a larger value
#: in a config or an edited model.json is refused on load instead of allocating at predict time).
RANGES = {
    "max_text_chars": (1, 100_000),
    "max_hashtag_chars": (1, 100_000),
    "max_text_words": (1, 10_000),
    "max_hashtags": (1, 10_000),
    "char_dim": (1, 4_096),
    "word_dim": (1, 4_096),
    "char_kernel": (1, 1_024),
    "word_kernel": (1, 1_024),
    "char_pool": (1, 1_024),
    "filters": (1, 16_384),
    "heads": (1, 1_024),
    "hidden": (1, 16_384),
    "char_min_count": (1, 10**9),
    "word_min_count": (1, 10**9),
    "max_words": (1, 10_000_000),
    "max_hashtag_vocab": (1, 10_000_000),
    # options beyond the paper (docs/mrlf.md, "Options beyond the paper"); 0 turns each off
    "user_weight_power": (0.0, 2.0),  # 0: every post alike (the paper), 1: every user alike; as the stack model
    "label_smoothing": (0.0, 0.99),  # the share of the target moved off the label
    "geo_smoothing_km": (0.0, 20_000.0),  # half the Earth's circumference: farther is "uniform"
}


@dataclass(frozen=True)
class MRLFConfig:
    """Architecture and input sizes of MRLF."""

    modalities: tuple[str, ...] = MODALITIES
    fusion: str = "mrlf"
    # input lengths ("maximum number of hashtags and text characters": lost in the paper)
    max_text_chars: int = 280  # a tweet's limit; covers ~90% of Instagram captions, place cues come early
    max_hashtag_chars: int = 200
    max_text_words: int = 64
    max_hashtags: int = 30  # Instagram allows at most 30 hashtags per post
    # embeddings ("embedding dimensions of text and hashtags": lost)
    char_dim: int = 32
    word_dim: int = 100
    # convolutions ("filter sizes ... and filter number": lost)
    char_kernel: int = 5
    word_kernel: int = 3
    char_pool: int = 2  # max-pool window over characters (eq. 2): halves the attention length
    filters: int = 128
    # attention ("number of heads": lost)
    heads: int = 4
    attention_dropout: float = 0.0  # one random draw per attention weight cost as much as attention on CPU
    # classifier ("dropout ... to stabilize the training": value lost)
    hidden: int = 256
    dropout: float = 0.5
    # vocabularies (built on the training split)
    char_min_count: int = 2
    word_min_count: int = 2
    max_words: int = 50_000
    max_hashtag_vocab: int = 50_000
    # options beyond the paper, all off by default (docs/mrlf.md, "Options beyond the paper")
    user_weight_power: float = 0.0  # loss weight 1 / n_user ** power per training post (mean 1)
    label_smoothing: float = 0.0  # target: 1 - eps on the label, eps spread (uniformly, or by distance)
    geo_smoothing_km: float = 0.0  # > 0: spread eps over the other POIs by exp(-distance / this)

    def __post_init__(self) -> None:
        raw = self.modalities
        if isinstance(raw, str):
            raw = [m.strip() for m in raw.split(",") if m.strip()]
        unknown = set(raw) - set(MODALITIES)
        modalities = tuple(m for m in MODALITIES if m in set(raw))  # canonical order
        if unknown:
            raise PostlocError(f"unknown modalities {sorted(unknown)}; use some of {', '.join(MODALITIES)}")
        if not modalities:
            raise PostlocError("at least one modality (text, hashtags, image) must be enabled")
        object.__setattr__(self, "modalities", modalities)
        if self.fusion not in FUSIONS:
            raise PostlocError(f"unknown fusion {self.fusion!r}; use one of {', '.join(FUSIONS)}")
        check_ranges(self, RANGES)
        if self.filters % self.heads:
            raise PostlocError(f"filters ({self.filters}) must be divisible by heads ({self.heads})")
        if not (0 <= self.dropout < 1 and 0 <= self.attention_dropout < 1):
            raise PostlocError("dropout rates must be in [0, 1)")
        if self.geo_smoothing_km > 0 and self.label_smoothing == 0:
            raise PostlocError(
                "params.geo_smoothing_km spreads the label_smoothing share over nearby POIs: "
                "set label_smoothing > 0 too (e.g. 0.1), or geo_smoothing_km = 0"
            )
        pair = FUSIONS[self.fusion]
        if pair is not None and not set(pair) <= set(modalities):
            warnings.warn(
                f"fusion {self.fusion!r} needs {' and '.join(pair)}, but modalities are "
                f"{', '.join(modalities)}: no attention fusion is applied (same as 'concat')",
                stacklevel=3,
            )

    @property
    def active_fusion(self) -> str:
        """The fusion that actually runs: ``concat`` when the variant's inputs are not all enabled."""
        pair = FUSIONS[self.fusion]
        return self.fusion if pair is None or set(pair) <= set(self.modalities) else "concat"
