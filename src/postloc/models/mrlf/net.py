"""The MRLF network (paper Fig. 1, eqs. 1-11) with its fusion variants and modality subsets.

Branches, each giving an ``F``-wide vector (``F`` = ``config.filters``):

* text, character level: shared char embedding -> conv -> pool -> [fusion] -> self-attention -> max
* text, word level: word embedding -> conv -> max
* hashtags, character level: the "#tag #tag" string, same as text (own conv and attention)
* hashtags, word level: hashtag embedding -> conv -> max
* image: frozen-backbone vector -> FC (the paper's FC after global average pooling)

Eq. 9 concatenates the branch vectors; eq. 10 maps them to POI logits through FC -> dropout
-> FC. A branch whose input is missing contributes a learned "missing" vector instead, and a
post with no input at all gets the training prior, so every post has a proper distribution.
"""

from __future__ import annotations

import torch
from torch import nn

from postloc.models.mrlf.config import MRLFConfig
from postloc.models.mrlf.layers import (
    CharEncoder,
    CrossFusion,
    MultiHeadAttention,
    SelfAttentionBlock,
    WordEncoder,
    masked_max,
)

SLOTS = {"text": ("char_text", "word_text"), "hashtags": ("char_tag", "word_tag"), "image": ("image",)}


class MRLFNet(nn.Module):
    """Batch of encoded posts -> POI logits. See the module docstring for the layout."""

    log_prior: torch.Tensor  # a buffer (registered in __init__)

    def __init__(
        self, config: MRLFConfig, *, n_chars: int, n_words: int, n_hashtags: int, image_dim: int, n_classes: int
    ):
        super().__init__()
        self.config = config
        width = config.filters
        self.modalities = config.modalities
        self.fusion = config.active_fusion
        self.slots = [slot for m in self.modalities for slot in SLOTS[m]]
        textual = {"text", "hashtags"} & set(self.modalities)
        if textual:
            self.char_embed = nn.Embedding(n_chars, config.char_dim, padding_idx=0)
        if "text" in self.modalities:
            self.char_text = CharEncoder(config.char_dim, width, config.char_kernel, config.char_pool)
            self.attend_text = SelfAttentionBlock(width, config.heads, config.attention_dropout)
            self.word_text = WordEncoder(n_words, config.word_dim, width, config.word_kernel)
        if "hashtags" in self.modalities:
            self.char_tag = CharEncoder(config.char_dim, width, config.char_kernel, config.char_pool)
            self.attend_tag = SelfAttentionBlock(width, config.heads, config.attention_dropout)
            self.word_tag = WordEncoder(n_hashtags, config.word_dim, width, config.word_kernel)
        self.image_dim = image_dim
        if "image" in self.modalities and image_dim > 0:
            self.image_fc = nn.Sequential(nn.Linear(image_dim, width), nn.ReLU())
        if self.fusion in ("mrlf", "image-text", "image-hashtag"):
            self.early = CrossFusion(width, config.heads, config.attention_dropout)
        elif self.fusion == "text-tag-end":
            self.late = MultiHeadAttention(width, config.heads, config.attention_dropout)
            self.late_norm = nn.LayerNorm(width)
        self.missing = nn.ParameterDict({slot: nn.Parameter(torch.randn(width) * 0.02) for slot in self.slots})
        self.classifier = nn.Sequential(
            nn.Linear(len(self.slots) * width, config.hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, n_classes),  # eq. 10; softmax (eq. 11) is in the loss / predict_proba
        )
        self.register_buffer("log_prior", torch.full((n_classes,), -float(torch.log(torch.tensor(float(n_classes))))))

    def set_prior(self, counts: torch.Tensor) -> None:
        """Class frequencies of the training set (add-one smoothed): the answer for an empty post."""
        counts = counts.to(torch.float32) + 1.0
        self.log_prior.copy_(torch.log(counts / counts.sum()))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        reps, present = self.represent(batch)
        features = []
        for slot in self.slots:
            features.append(torch.where(present[slot][:, None], reps[slot], self.missing[slot].expand_as(reps[slot])))
        logits = self.classifier(torch.cat(features, dim=1))
        anything = torch.stack([present[s] for s in self.slots], dim=1).any(dim=1)
        return torch.where(anything[:, None], logits, self.log_prior.expand_as(logits))

    def represent(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Per-slot ``[B, F]`` vectors and ``[B]`` presence flags (before missing-vector substitution)."""
        reps: dict[str, torch.Tensor] = {}
        present: dict[str, torch.Tensor] = {}
        seqs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if "text" in self.modalities:
            ids = batch["text_chars"]
            seqs["text"] = self.char_text(self.char_embed(ids), ids != 0)
        if "hashtags" in self.modalities:
            ids = batch["tag_chars"]
            seqs["hashtags"] = self.char_tag(self.char_embed(ids), ids != 0)
        if "image" in self.modalities:
            n = batch["image_present"].shape[0]
            if self.image_dim > 0:
                token = self.image_fc(batch["image"])[:, None, :]
                mask = batch["image_present"][:, None]
            else:  # enabled, but the data had no image vectors: always missing
                device = batch["image_present"].device
                token = torch.zeros(n, 1, self.config.filters, device=device)
                mask = torch.zeros(n, 1, dtype=torch.bool, device=device)
            seqs["image"] = (token, mask)

        if self.fusion in ("mrlf", "image-text", "image-hashtag"):
            a, b = {
                "mrlf": ("text", "hashtags"),
                "image-text": ("image", "text"),
                "image-hashtag": ("image", "hashtags"),
            }[self.fusion]
            (sa, ma), (sb, mb) = seqs[a], seqs[b]
            fa, fb = self.early(sa, ma, sb, mb)
            seqs[a], seqs[b] = (fa, ma), (fb, mb)

        if "text" in self.modalities:
            seq, mask = seqs["text"]
            reps["char_text"] = masked_max(self.attend_text(seq, mask), mask)
            present["char_text"] = mask.any(dim=1)
            reps["word_text"], present["word_text"] = self.word_text(batch["text_words"])
        if "hashtags" in self.modalities:
            seq, mask = seqs["hashtags"]
            reps["char_tag"] = masked_max(self.attend_tag(seq, mask), mask)
            present["char_tag"] = mask.any(dim=1)
            reps["word_tag"], present["word_tag"] = self.word_tag(batch["tags"])
        if "image" in self.modalities:
            token, mask = seqs["image"]
            reps["image"], present["image"] = token[:, 0], mask[:, 0]

        if self.fusion == "text-tag-end":
            pair = torch.stack([reps["char_text"], reps["char_tag"]], dim=1)
            mask = torch.stack([present["char_text"], present["char_tag"]], dim=1)
            fused = self.late_norm(pair + self.late(pair, pair, mask))
            reps["char_text"], reps["char_tag"] = fused[:, 0], fused[:, 1]
        return reps, present
