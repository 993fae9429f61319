"""The majority baseline: every post gets the training class frequencies.

It is the floor any model must clear. Returning the full frequency vector (rather than a
one-hot on the largest POI) makes its Acc@k the share of posts at the k biggest POIs, which is
the right floor for Acc@3/Acc@5 too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from postloc.models.base import Estimator, write_manifest
from postloc.models.registry import register


@dataclass(frozen=True)
class MajorityConfig:
    """No hyperparameters; the dataclass keeps the interface uniform."""


@register("majority")
class Majority(Estimator):
    name = "majority"
    Config = MajorityConfig

    def __init__(self, config: Any = None, trainer=None):
        super().__init__(config, trainer)
        self.counts_: np.ndarray = np.zeros(0)

    def fit(self, train: pd.DataFrame, val: pd.DataFrame | None = None, *, classes: Sequence[str] | None = None,
            run_dir: str | Path | None = None, resume: bool = False, callbacks: Iterable[Any] = (),
            progress: bool | None = None) -> "Majority":
        self.classes_ = self._resolve_classes(train, classes)
        index = {c: i for i, c in enumerate(self.classes_)}
        self.counts_ = np.bincount([index[str(p)] for p in train["poi"]], minlength=len(self.classes_)).astype(float)
        return self

    def predict_proba(self, posts: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        prior = self.counts_ / self.counts_.sum()
        return np.tile(prior, (len(posts), 1))

    def save(self, directory: str | Path) -> Path:
        self._check_fitted()
        write_manifest(directory, self._manifest(counts=self.counts_.tolist()))
        return Path(directory)

    @classmethod
    def load(cls, directory: str | Path) -> "Majority":
        model, manifest = cls._from_manifest(directory)
        model.counts_ = np.asarray(manifest["counts"], dtype=float)
        return model
