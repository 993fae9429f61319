"""k nearest neighbours over image feature vectors (cosine): the reference any image model must beat.

Photos of one landmark taken by many people are near-duplicates in a backbone's feature space,
so a neighbour vote is a strong, training-free image baseline the paper lacks. The vote of the
``k`` most similar training images is weighted by similarity and mixed with the training prior
(``prior_weight``) so every class keeps a non-zero probability; posts without an image get the
prior. Saved as the training matrix and labels in safetensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from postloc.data.image_features import image_dim, image_matrix
from postloc.errors import PostlocError
from postloc.io.model_files import load_tensors, save_tensors
from postloc.models.base import Estimator, FitOptions, ModelInputs
from postloc.models.registry import register
from postloc.settings import check_ranges

WEIGHTS = "neighbours.safetensors"


#: what a config (or an edited model.json) may ask for; refused on load past it
RANGES = {
    "k": (1, 100_000),
    "prior_weight": (0, 1e6),
    "chunk": (1, 1_000_000),
}


@dataclass(frozen=True)
class KnnImageConfig:
    k: int = 10
    prior_weight: float = 0.01
    chunk: int = 1024  # query rows per similarity block (bounds memory)

    def __post_init__(self) -> None:
        check_ranges(self, RANGES)


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@register
class KnnImage(Estimator):
    name = "knn-image"
    Config = KnnImageConfig
    requires = ("image",)

    def __init__(self, config: Any = None, trainer=None):
        super().__init__(config, trainer)
        self.matrix_ = np.zeros((0, 0), dtype=np.float32)
        self.labels_ = np.zeros(0, dtype=np.int64)
        self.prior_ = np.zeros(0)

    @property
    def inputs_used(self) -> ModelInputs:
        """The photo alone, as a vector as long as the training vectors it compares with."""
        return ModelInputs.reading(image_dim=self.matrix_.shape[1] if len(self.matrix_) else 0)

    def _fit(
        self, train: pd.DataFrame, val: pd.DataFrame | None, *, classes: Sequence[str] | None, options: FitOptions
    ) -> None:
        self.classes_ = self._resolve_classes(train, classes)
        dim = image_dim(train)
        if dim == 0:
            raise PostlocError("knn-image: the posts have no image vectors (image_features.parquet is missing)")
        y = self._class_index(train)
        vectors, present = image_matrix(train, dim)
        self.matrix_ = _normalise(vectors[present]).astype(np.float32)
        self.labels_ = y[present]
        counts = np.bincount(y, minlength=len(self.classes_)).astype(float) + 1.0
        self.prior_ = counts / counts.sum()

    def predict_proba(self, posts: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        n_classes = len(self.classes_)
        out = np.tile(self.prior_, (len(posts), 1))
        vectors, present = image_matrix(posts, self.matrix_.shape[1])
        rows = np.nonzero(present)[0]
        k = min(self.config.k, len(self.labels_))
        for start in range(0, len(rows), self.config.chunk):
            part = rows[start : start + self.config.chunk]
            sims = _normalise(vectors[part]) @ self.matrix_.T
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            weights = np.clip(np.take_along_axis(sims, top, axis=1), 0.0, None) + 1e-6
            votes = np.zeros((len(part), n_classes))
            np.add.at(votes, (np.repeat(np.arange(len(part)), k), self.labels_[top].reshape(-1)), weights.reshape(-1))
            votes /= votes.sum(axis=1, keepdims=True)
            w = self.config.prior_weight
            out[part] = (1 - w) * votes + w * self.prior_
        return out

    def _write_files(self, folder: Path) -> None:
        save_tensors(
            {
                "matrix": torch.from_numpy(self.matrix_),
                "labels": torch.from_numpy(self.labels_),
                "prior": torch.from_numpy(self.prior_),
            },
            folder / WEIGHTS,
        )

    def _read_files(self, folder: Path, manifest: dict[str, Any]) -> None:
        tensors = load_tensors(folder / WEIGHTS)
        self.matrix_, self.labels_, self.prior_ = (tensors[k].numpy() for k in ("matrix", "labels", "prior"))
