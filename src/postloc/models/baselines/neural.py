"""What the small PyTorch baselines share beyond :class:`~postloc.models.torch_estimator.TorchEstimator`.

DeepGeo, LocTwi and the image heads differ only in how posts become arrays and in the network;
fitting, prediction and saving are the torch-estimator base's. Here: posts as named arrays
(:class:`ArrayData`), the prior fallback module (every network keeps a ``log_prior`` buffer and
answers the training prior for a post with no usable input, like MRLF does), and a post's
caption and hashtags read from a DataFrame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from postloc.text.hashtags import frame_hashtags


class ArrayData:
    """Posts as named numpy arrays; integer id matrices are cut to the batch's longest row."""

    def __init__(self, arrays: Mapping[str, np.ndarray], y: np.ndarray, cut: Sequence[str] = ()):
        self.arrays = dict(arrays)
        self.y = y
        self.cut = tuple(cut)

    def __len__(self) -> int:
        return len(self.y)

    def lengths(self) -> np.ndarray:
        if not self.cut:
            return np.zeros(len(self.y), dtype=np.int64)
        return sum((self.arrays[k] != 0).sum(axis=1) for k in self.cut)

    def batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        out = {}
        for key, array in self.arrays.items():
            part = array[index]
            if key in self.cut:
                used = (part != 0).any(axis=0)
                width = int(np.nonzero(used)[0].max()) + 1 if used.any() else 1
                out[key] = torch.from_numpy(np.ascontiguousarray(part[:, :width])).long()
            else:
                out[key] = torch.from_numpy(np.ascontiguousarray(part))
        out["y"] = torch.from_numpy(self.y[index])
        return out


class PriorHead(nn.Module):
    """Mixin module: holds the training prior and swaps it in for posts without input."""

    log_prior: torch.Tensor  # a buffer (init_prior)

    def init_prior(self, n_classes: int) -> None:
        self.register_buffer("log_prior", torch.full((n_classes,), -float(np.log(max(n_classes, 1)))))

    def set_prior(self, counts: np.ndarray | torch.Tensor) -> None:
        smoothed = torch.as_tensor(counts, dtype=torch.float32) + 1.0
        self.log_prior.copy_(torch.log(smoothed / smoothed.sum()))

    def with_prior(self, logits: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return torch.where(present[:, None], logits, self.log_prior.expand_as(logits))


def post_texts(posts: pd.DataFrame) -> list[str]:
    """Each post's caption ("" where it has none)."""
    return [t if isinstance(t, str) else "" for t in posts["text"]] if "text" in posts else [""] * len(posts)


def post_tags(posts: pd.DataFrame) -> list[list[str]]:
    """Each post's hashtags as a list of strings (none where the frame has no ``hashtags`` column)."""
    return frame_hashtags(posts.get("hashtags"), len(posts))
