"""TagVisor-style baseline: a random forest over a post's hashtag bag-of-words.

The paper's TagVisor baseline classifies places from hashtags with a random forest. Features are
binary hashtag indicators (tags seen in at least ``min_df`` training posts); posts without any
known tag get the training prior instead of the forest's arbitrary all-zeros leaf. The forest is
saved as tree arrays (:mod:`postloc.models.baselines.forest_arrays`), never pickled.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from postloc.io.model_files import load_tensors, read_json, save_tensors, write_compact_json
from postloc.models.base import Estimator, FitOptions, ModelInputs
from postloc.models.baselines.forest_arrays import ForestArrays
from postloc.models.registry import register
from postloc.text.hashtags import frame_hashtags

WEIGHTS = "forest.safetensors"
VOCAB = "vocab.json"


@dataclass(frozen=True)
class TagVisorConfig:
    n_estimators: int = 100
    max_depth: int = 0  # 0: grow until pure
    min_samples_leaf: int = 1
    max_features: str = "sqrt"
    min_df: int = 1
    class_weight: str = ""  # "" or "balanced"
    seed: int = -1  # -1: the trainer's seed


@register
class TagVisor(Estimator):
    name = "tagvisor"
    Config = TagVisorConfig
    requires = ("hashtags",)
    quick_params = {"n_estimators": 5}

    def __init__(self, config: Any = None, trainer=None):
        super().__init__(config, trainer)
        self.vocabulary_: list[str] = []
        self.forest_: ForestArrays | None = None
        self.seen_: list[int] = []
        self.prior_ = np.zeros(0)

    @property
    def inputs_used(self) -> ModelInputs:
        """The hashtags alone (TagVisor's forest is over a hashtag vocabulary)."""
        return ModelInputs.reading("hashtags")

    def _fit(
        self, train: pd.DataFrame, val: pd.DataFrame | None, *, classes: Sequence[str] | None, options: FitOptions
    ) -> None:
        from sklearn.ensemble import RandomForestClassifier

        cfg = self.config
        self.classes_ = self._resolve_classes(train, classes)
        y = self._class_index(train)
        counts = np.bincount(y, minlength=len(self.classes_)).astype(float) + 1.0
        self.prior_ = counts / counts.sum()
        tags = frame_hashtags(train.get("hashtags"), len(train))
        df = Counter(t for row in tags for t in set(row))
        self.vocabulary_ = sorted(t for t, n in df.items() if n >= cfg.min_df)
        X = self._matrix(tags)
        usable = X.any(axis=1)
        self.seen_ = sorted(set(y[usable].tolist()))
        if len(self.seen_) < 1:
            self.forest_ = None
            return
        forest = RandomForestClassifier(
            n_estimators=cfg.n_estimators,
            max_depth=cfg.max_depth or None,
            min_samples_leaf=cfg.min_samples_leaf,
            max_features=cfg.max_features,
            class_weight=cfg.class_weight or None,
            random_state=cfg.seed if cfg.seed >= 0 else self.trainer.seed,
            n_jobs=self.trainer.threads,
        )
        forest.fit(X[usable], y[usable])
        self.seen_ = [int(c) for c in forest.classes_]
        self.forest_ = ForestArrays.from_forest(forest)

    def predict_proba(self, posts: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        out = np.tile(self.prior_, (len(posts), 1))
        if self.forest_ is None or not len(posts):
            return out
        for start in range(0, len(posts), 1024):
            part = posts.iloc[start : start + 1024]
            X = self._matrix(frame_hashtags(part.get("hashtags"), len(part)))
            usable = X.any(axis=1)
            if usable.any():
                block = np.zeros((int(usable.sum()), len(self.classes_)))
                block[:, self.seen_] = self.forest_.predict_proba(X[usable])
                out[start + np.nonzero(usable)[0]] = block
        return out

    def _manifest_extra(self) -> dict[str, Any]:
        return {"seen": self.seen_, "prior": self.prior_.tolist(), "has_forest": self.forest_ is not None}

    def _write_files(self, folder: Path) -> None:
        if self.forest_ is not None:
            save_tensors(
                {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.forest_.to_dict().items()},
                folder / WEIGHTS,
            )
        write_compact_json(folder / VOCAB, self.vocabulary_)

    def _read_files(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.seen_ = [int(i) for i in manifest["seen"]]
        self.prior_ = np.asarray(manifest["prior"], dtype=float)
        if manifest.get("has_forest"):
            self.forest_ = ForestArrays.from_dict({k: v.numpy() for k, v in load_tensors(folder / WEIGHTS).items()})
        self.vocabulary_ = read_json(folder / VOCAB)

    def _matrix(self, tags: list[list[str]]) -> np.ndarray:
        column = {t: i for i, t in enumerate(self.vocabulary_)}
        X = np.zeros((len(tags), len(self.vocabulary_)), dtype=np.float32)
        for r, row in enumerate(tags):
            for t in row:
                j = column.get(t)
                if j is not None:
                    X[r, j] = 1.0
        return X
