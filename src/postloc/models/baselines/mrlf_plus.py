"""``mrlf-plus``: MRLF late-fused with a linear bag-of-tokens model; a NAMED variant, not the paper's MRLF.

Where MRLF loses (the Dresden sample: hashtags only, 86 tags), a TF-IDF + logistic regression
over the same tokens wins: with few, mostly independent indicator features a convex linear model
is hard to beat, while the network spends capacity on character patterns and early-stops on a
noisy validation loss. The two make different errors, so their log-probabilities are combined,
``log p = w * log p_mrlf + (1 - w) * log p_linear`` (renormalised), with ``w`` picked on the
validation split from ``weights``. This keeps MRLF's multimodal branches (images, typos via
characters) and adds the linear model's calibrated token evidence. Saved as two sub-models
(``mrlf/``, ``linear/``) plus the chosen weight; ``mrlf`` itself is unchanged.
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
class MRLFPlusConfig:
    modalities: tuple[str, ...] = ("text", "hashtags", "image")
    fusion: str = "mrlf"
    filters: int = 128
    heads: int = 4
    hidden: int = 256
    char_dim: int = 32
    word_dim: int = 100
    max_text_chars: int = 280
    max_hashtag_chars: int = 200
    weights: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)  # MRLF's share, chosen on validation log-loss


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, 1e-12, 1.0))


def _mix(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    z = w * _log(a) + (1 - w) * _log(b)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@register("mrlf-plus")
class MRLFPlus(Estimator):
    name = "mrlf-plus"
    Config = MRLFPlusConfig

    def __init__(self, config: Any = None, trainer=None):
        super().__init__(config, trainer)
        self.mrlf = None
        self.linear = None
        self.weight_ = 0.5

    def _mrlf_params(self) -> dict[str, Any]:
        c = self.config
        return {"modalities": list(c.modalities), "fusion": c.fusion, "filters": c.filters, "heads": c.heads,
                "hidden": c.hidden, "char_dim": c.char_dim, "word_dim": c.word_dim,
                "max_text_chars": c.max_text_chars, "max_hashtag_chars": c.max_hashtag_chars}

    def fit(self, train: pd.DataFrame, val: pd.DataFrame | None = None, *, classes: Sequence[str] | None = None,
            run_dir: str | Path | None = None, resume: bool = False, callbacks: Iterable[Any] = (),
            progress: bool | None = None) -> "MRLFPlus":
        import warnings

        from postloc.models.mrlf import MRLF
        from postloc.models.tfidf_logreg import TfidfLogReg

        self.classes_ = self._resolve_classes(train, classes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.mrlf = MRLF(self._mrlf_params(), self.trainer)
        self.mrlf.fit(train, val, classes=self.classes_, callbacks=callbacks, progress=progress)
        self.linear = TfidfLogReg({}, self.trainer).fit(train, val, classes=self.classes_)
        if val is not None and len(val):
            index = {c: i for i, c in enumerate(self.classes_)}
            y = np.array([index.get(str(p), -1) for p in val["poi"]])
            ok = y >= 0
            a, b = self.mrlf.predict_proba(val), self.linear.predict_proba(val)
            losses = [(-_log(_mix(a, b, w))[ok, y[ok]].mean(), w) for w in self.config.weights]
            self.weight_ = float(min(losses)[1])
        return self

    def predict_proba(self, posts: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        return _mix(self.mrlf.predict_proba(posts), self.linear.predict_proba(posts), self.weight_)

    def save(self, directory: str | Path) -> Path:
        self._check_fitted()
        directory = Path(directory)
        write_manifest(directory, self._manifest(weight=self.weight_))
        self.mrlf.save(directory / "mrlf")
        self.linear.save(directory / "linear")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "MRLFPlus":
        from postloc.models.mrlf import MRLF
        from postloc.models.tfidf_logreg import TfidfLogReg

        directory = Path(directory)
        model, manifest = cls._from_manifest(directory)
        model.weight_ = float(manifest["weight"])
        model.mrlf = MRLF.load(directory / "mrlf")
        model.linear = TfidfLogReg.load(directory / "linear")
        return model
