"""Building blocks of MRLF: masked multi-head attention, character and word encoders, fusion.

Every block takes a boolean mask (True = real token) next to its tensor. Missing modalities
are normal in social posts (a third of the paper's New York posts have no text), so each
block must give finite outputs for an all-padding row; the caller then swaps that row's
representation for a learned "missing" vector.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention with a key padding mask (paper eqs. 3-5).

    Written out rather than ``nn.MultiheadAttention`` because that module returns NaN for a
    row whose keys are all padding and switches to a different "fast path" kernel in eval
    mode; here an all-padding row gives exactly zero, in training and inference alike.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)  # W^O of eq. 5
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, key: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """``query [B, Lq, D]`` attends to ``key [B, Lk, D]`` where ``key_mask [B, Lk]`` is True."""
        b, lq, d = query.shape
        has_key = key_mask.any(dim=1)
        if not bool(has_key.any()):  # no row has a key: the output is exactly zero, skip the projections
            return query.new_zeros(b, lq, d) + zero_anchor(self)
        if not torch.is_grad_enabled() and not self.training:
            return self._inference(query, key, key_mask, has_key)
        # A row with no key would softmax over nothing (NaN): let it see position 0, zero it below.
        safe = key_mask.clone()
        safe[:, 0] |= ~has_key
        # training keeps the written-out kernel: its numerics are what saved runs resume into
        mixed = self._explicit(query, key, safe)
        return self.out(mixed) * has_key[:, None, None].to(mixed.dtype)

    def _inference(
        self, query: torch.Tensor, key: torch.Tensor, key_mask: torch.Tensor, has_key: torch.Tensor
    ) -> torch.Tensor:
        """:meth:`forward` without autograd: torch's fused kernel, and no pass over the data that
        changes nothing (a mask when no key is padding, the zeroing when every row has a key)."""
        every_row = bool(has_key.all())
        if bool(key_mask.all()):
            mask = None
        elif every_row:
            mask = key_mask[:, None, None, :]
        else:
            safe = key_mask.clone()
            safe[:, 0] |= ~has_key
            mask = safe[:, None, None, :]
        out = self.out(self._fused(query, key, mask))
        return out if every_row else out * has_key[:, None, None].to(out.dtype)

    def _heads(self, x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
        b, length, _ = x.shape
        return linear(x).view(b, length, self.heads, self.head_dim).transpose(1, 2)

    def _explicit(self, query: torch.Tensor, key: torch.Tensor, safe: torch.Tensor) -> torch.Tensor:
        b, lq, d = query.shape
        q, k, v = self._heads(query, self.query), self._heads(key, self.key), self._heads(key, self.value)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~safe[:, None, None, :], float("-inf"))
        weights = self.dropout(torch.softmax(scores, dim=-1))
        return (weights @ v).transpose(1, 2).reshape(b, lq, d)

    def _fused(self, query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Inference: torch's fused kernel, the same function as :meth:`_explicit` (no dropout in eval);
        ``mask [B, 1, 1, Lk]`` (None: every key is real)."""
        b, lq, d = query.shape
        q, k, v = self._heads(query, self.query), self._heads(key, self.key), self._heads(key, self.value)
        mixed = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return mixed.transpose(1, 2).reshape(b, lq, d)


def zero_anchor(*modules: nn.Module) -> torch.Tensor | float:
    """``0 * (sum of the modules' parameters)`` while autograd records, else the float 0.

    A branch skipped because its input is absent from the whole batch gave exactly zero
    gradients when it ran; adding this exact zero to its (zero) output keeps those zero
    gradients, so the optimizer's running statistics and therefore the trained weights are
    bit-identical to running the branch.
    """
    if not torch.is_grad_enabled():
        return 0.0
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    if not params:
        return 0.0
    return torch.stack([p.sum() for p in params]).sum() * 0.0


class CharEncoder(nn.Module):
    """Embedded characters -> 1-D convolution -> ReLU -> max-pool over a small window (eqs. 1-2).

    Pooling shortens the sequence by ``pool`` before attention, which is quadratic in length:
    the paper's reason for the convolution + pooling in front of self-attention. The character
    embedding itself lives in the network and is shared by text and hashtags (one character
    set, so that fusion can align the same letters in both).
    """

    def __init__(self, dim: int, filters: int, kernel: int, pool: int):
        super().__init__()
        self.conv = nn.Conv1d(dim, filters, kernel, padding=kernel // 2)
        self.pool = pool

    def forward(self, embedded: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``embedded [B, L, dim]``, ``mask [B, L]`` -> ``(features [B, ceil(L/pool), F], mask)``."""
        length = embedded.shape[1]
        x = self.conv(embedded.transpose(1, 2))[:, :, :length]
        if torch.is_grad_enabled():
            x = F.relu(x) * mask[:, None, :].to(x.dtype)  # padding gives 0, which never beats a ReLU output
        else:  # the same values, in place: no autograd needs the conv's output kept
            x = F.relu(x, inplace=True)
            if not bool(mask.all()):
                x.masked_fill_(~mask[:, None, :], 0.0)
        x = F.max_pool1d(x, self.pool, self.pool, ceil_mode=True)
        pooled_mask = F.max_pool1d(mask[:, None, :].float(), self.pool, self.pool, ceil_mode=True)[:, 0] > 0
        # contiguous once here: the attention's three projections, the residual and the norm that read it
        # would each copy the transposed view (a quarter of MRLF's time on caption posts)
        return x.transpose(1, 2).contiguous(), pooled_mask


class SelfAttentionBlock(nn.Module):
    """Self-attention with a residual connection and layer norm over a character sequence.

    The residual (not in the paper's equations, standard in Transformer encoders) keeps the
    convolution features reachable while attention is still untrained.
    """

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.attention = MultiHeadAttention(dim, heads, dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.attention(x, x, mask))


class CrossFusion(nn.Module):
    """Early fusion of two sequences by attention in both directions (paper eqs. 6-8).

    ``a`` attends to ``b`` and ``b`` to ``a``; each result is added to its own sequence, so each
    branch still forms its own representation afterwards. When one side is missing its
    attention output is zero and the other side passes through (normalised) unchanged.
    """

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.a_from_b = MultiHeadAttention(dim, heads, dropout)
        self.b_from_a = MultiHeadAttention(dim, heads, dropout)
        self.norm_a, self.norm_b = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, a: torch.Tensor, a_mask: torch.Tensor, b: torch.Tensor, b_mask: torch.Tensor):
        fused_a = self.norm_a(a + self.a_from_b(a, b, b_mask))
        fused_b = self.norm_b(b + self.b_from_a(b, a, a_mask))
        return fused_a, fused_b


class WordEncoder(nn.Module):
    """Words (or hashtags) -> embedding -> convolution -> ReLU -> max over the sequence (Sec. III-A2)."""

    def __init__(self, vocab_size: int, dim: int, filters: int, kernel: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.conv = nn.Conv1d(dim, filters, kernel, padding=kernel // 2)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``ids [B, L]`` -> ``(vector [B, F], present [B])``."""
        mask = ids != 0
        x = F.relu(self.conv(self.embed(ids).transpose(1, 2)))[:, :, : ids.shape[1]].transpose(1, 2)
        return masked_max(x, mask), mask.any(dim=1)


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over the sequence of ``x [B, L, F]`` where ``mask [B, L]``; rows without tokens give 0."""
    filled = x.masked_fill(~mask[:, :, None], float("-inf"))
    best = filled.max(dim=1).values
    return torch.where(mask.any(dim=1, keepdim=True), best, torch.zeros_like(best))
