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
    zero_anchor,
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
        """Per-slot ``[B, F]`` vectors and ``[B]`` presence flags (before missing-vector substitution).

        An input that no post of the batch has (Dresden posts have no caption) is not computed:
        its branch would give all-zero vectors flagged absent, which is what it gets directly.
        Branches skipped that way get exact-zero gradients through :func:`zero_anchor`, as they
        did when they ran, so training stays bit-identical.
        """
        n = next(iter(batch.values())).shape[0]
        width = self.config.filters
        reps: dict[str, torch.Tensor] = {}
        present: dict[str, torch.Tensor] = {}
        seqs: dict[str, tuple[torch.Tensor, torch.Tensor] | None] = {}
        skipped: list[nn.Module] = []
        if "text" in self.modalities:
            seqs["text"] = self._chars(batch["text_chars"], self.char_text, skipped)
        if "hashtags" in self.modalities:
            seqs["hashtags"] = self._chars(batch["tag_chars"], self.char_tag, skipped)
        if "image" in self.modalities:
            mask = batch["image_present"][:, None]
            if self.image_dim > 0 and bool(mask.any()):
                seqs["image"] = (self.image_fc(batch["image"])[:, None, :], mask)
            else:  # no post of the batch has an image vector (or the data had none): always missing
                seqs["image"] = None
                if self.image_dim > 0:
                    skipped.append(self.image_fc)

        if self.fusion in ("mrlf", "image-text", "image-hashtag"):
            a, b = {
                "mrlf": ("text", "hashtags"),
                "image-text": ("image", "text"),
                "image-hashtag": ("image", "hashtags"),
            }[self.fusion]
            seqs[a], seqs[b] = self._fuse(seqs[a], seqs[b], skipped)

        for modality, slot, attend in (("text", "char_text", "attend_text"), ("hashtags", "char_tag", "attend_tag")):
            if modality not in self.modalities:
                continue
            seq = seqs[modality]
            if seq is None:
                reps[slot], present[slot] = self._absent(n, width, batch)
                skipped.append(getattr(self, attend))
            else:
                reps[slot] = masked_max(getattr(self, attend)(seq[0], seq[1]), seq[1])
                present[slot] = seq[1].any(dim=1)
        for modality, slot, key in (("text", "word_text", "text_words"), ("hashtags", "word_tag", "tags")):
            if modality in self.modalities:
                encoder = getattr(self, slot)
                if bool((batch[key] != 0).any()):
                    reps[slot], present[slot] = encoder(batch[key])
                else:
                    reps[slot], present[slot] = self._absent(n, width, batch)
                    skipped.append(encoder)
        if "image" in self.modalities:
            image = seqs["image"]
            if image is None:
                reps["image"], present["image"] = self._absent(n, width, batch)
            else:
                reps["image"], present["image"] = image[0][:, 0], image[1][:, 0]

        if self.fusion == "text-tag-end":
            pair = torch.stack([reps["char_text"], reps["char_tag"]], dim=1)
            mask = torch.stack([present["char_text"], present["char_tag"]], dim=1)
            fused = self.late_norm(pair + self.late(pair, pair, mask))
            reps["char_text"], reps["char_tag"] = fused[:, 0], fused[:, 1]
        if skipped and torch.is_grad_enabled():
            first = next(iter(reps))
            reps[first] = reps[first] + zero_anchor(*skipped)
        return reps, present

    def _chars(
        self, ids: torch.Tensor, encoder: CharEncoder, skipped: list[nn.Module]
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Embedded, convolved and pooled characters with their mask; None when no post has any."""
        mask = ids != 0
        if not bool(mask.any()):
            skipped += [encoder, self.char_embed]
            return None
        return encoder(self.char_embed(ids), mask)

    def _fuse(
        self,
        a: tuple[torch.Tensor, torch.Tensor] | None,
        b: tuple[torch.Tensor, torch.Tensor] | None,
        skipped: list[nn.Module],
    ) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, tuple[torch.Tensor, torch.Tensor] | None]:
        """Early fusion (eqs. 6-8) of two sequences; a side absent from the whole batch stays absent.

        When one side is absent the other's attention has no key (exactly zero), so that side
        is just normalised: ``norm(x + 0) == norm(x)``.
        """
        early = self.early
        if a is not None and b is not None:
            fa, fb = early(a[0], a[1], b[0], b[1])
            return (fa, a[1]), (fb, b[1])
        skipped += [early.a_from_b, early.b_from_a]
        if a is not None:
            skipped.append(early.norm_b)
            return (early.norm_a(a[0]), a[1]), None
        skipped.append(early.norm_a)
        if b is not None:
            return None, (early.norm_b(b[0]), b[1])
        skipped.append(early.norm_b)
        return None, None

    @staticmethod
    def _absent(n: int, width: int, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """What a branch gives for a batch without its input: zero vectors, all flagged absent."""
        device = batch["image_present"].device if "image_present" in batch else None
        return torch.zeros(n, width, device=device), torch.zeros(n, dtype=torch.bool, device=device)
