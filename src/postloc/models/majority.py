"""The majority baseline: every post gets the training class frequencies.

It is the floor any model must clear. Returning the full frequency vector (rather than a
one-hot on the largest POI) makes its Acc@k the share of posts at the k biggest POIs, which is
the right floor for Acc@3/Acc@5 too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from postloc.errors import EmptyDatasetError
from postloc.models.base import Estimator, FitOptions, ModelInputs
from postloc.models.registry import register


@dataclass(frozen=True)
class MajorityConfig:
    """No hyperparameters; the dataclass keeps the interface uniform."""


@register
class Majority(Estimator):
    name = "majority"
    Config = MajorityConfig

    def __init__(self, config: Any = None, trainer=None):
        super().__init__(config, trainer)
        self.counts_: np.ndarray = np.zeros(0)

    @property
    def inputs_used(self) -> ModelInputs:
        """Nothing of the post: every post gets the training frequencies."""
        return ModelInputs.reading()

    def _fit(
        self, train: pd.DataFrame, val: pd.DataFrame | None, *, classes: Sequence[str] | None, options: FitOptions
    ) -> None:
        if not len(train):  # frequencies of nothing are 0/0: NaN probabilities
            raise EmptyDatasetError(f"{self.name}: no training posts to count")
        self.classes_ = self._resolve_classes(train, classes)
        self.counts_ = np.bincount(self._class_index(train), minlength=len(self.classes_)).astype(float)

    def predict_proba(self, posts: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        prior = self.counts_ / self.counts_.sum()
        return np.tile(prior, (len(posts), 1))

    def _manifest_extra(self) -> dict[str, Any]:
        return {"counts": self.counts_.tolist()}

    def _read_files(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.counts_ = np.asarray(manifest["counts"], dtype=float)
