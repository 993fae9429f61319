"""TF-IDF over caption words and hashtags + multinomial logistic regression (scikit-learn).

The strong, cheap text baseline any neural model should beat: on hashtag-heavy data a linear
model over tag indicators is hard to out-do. Hashtags become ``#tag`` tokens so that a tag
written inside the caption and one in the hashtag list meet.

Saved without pickle: the vocabulary and chosen settings in JSON, ``idf``, ``coef`` and
``intercept`` in ``weights.safetensors``; prediction recomputes TF-IDF (sublinear tf, L2 norm,
exactly as scikit-learn's TfidfVectorizer does) and the softmax by hand.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from postloc.errors import EmptyDatasetError, PostlocError
from postloc.io.model_files import load_tensors, read_json, save_tensors, write_compact_json
from postloc.models.base import Estimator, FitOptions, ModelInputs
from postloc.models.registry import register
from postloc.text.hashtags import frame_hashtags
from postloc.text.normalize import tokenize

WEIGHTS = "weights.safetensors"
VOCAB = "vocab.json"


@dataclass(frozen=True)
class TfidfLogRegConfig:
    C: float = 0.0  # inverse regularisation; 0: pick from c_grid by validation accuracy (fit on train)
    c_grid: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0, 30.0)
    min_df: int = 2  # a token must occur in this many training posts
    max_features: int = 100_000
    ngram_max: int = 1  # 2 adds caption word bigrams
    max_iter: int = 2000


def post_tokens(text: Any, hashtags: Any, ngram_max: int = 1) -> list[str]:
    """Caption tokens (+ bigrams) and ``#hashtag`` tokens of one post."""
    words = tokenize(text) if isinstance(text, str) else []
    tokens = list(words)
    for n in range(2, ngram_max + 1):
        tokens += [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    if hashtags is not None and not isinstance(hashtags, float):
        tokens += [f"#{t}" for t in hashtags]
    return tokens


@register
class TfidfLogReg(Estimator):
    name = "tfidf-logreg"
    Config = TfidfLogRegConfig
    requires = ("text|hashtags",)

    def __init__(self, config: Any = None, trainer=None):
        super().__init__(config, trainer)
        self.vocabulary_: list[str] = []
        self.idf_ = np.zeros(0)
        self.coef_ = np.zeros((0, 0))
        self.intercept_ = np.zeros(0)
        self.seen_: list[int] = []  # indices into classes_ of the classes the regression saw
        self.C_ = 0.0

    @property
    def inputs_used(self) -> ModelInputs:
        """Caption words and ``#hashtag`` tokens (:func:`post_tokens`), no photo."""
        return ModelInputs.reading("text", "hashtags")

    def _fit(
        self, train: pd.DataFrame, val: pd.DataFrame | None, *, classes: Sequence[str] | None, options: FitOptions
    ) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        cfg = self.config
        if not len(train):
            raise EmptyDatasetError(f"{self.name}: no training posts to learn from")
        self.classes_ = self._resolve_classes(train, classes)
        y = self._class_index(train)
        docs = self._docs(train)
        vectorizer = TfidfVectorizer(
            analyzer=lambda tokens: tokens,
            min_df=min(cfg.min_df, max(1, len(docs))),
            max_features=cfg.max_features,
            sublinear_tf=True,
        )
        try:
            vectorizer.fit(docs)
        except ValueError:  # no token survives min_df: an empty vocabulary
            vectorizer = None
        self.vocabulary_ = (
            [] if vectorizer is None else [t for t, _ in sorted(vectorizer.vocabulary_.items(), key=lambda kv: kv[1])]
        )
        self.idf_ = np.zeros(0) if vectorizer is None else vectorizer.idf_.astype(np.float64)
        X = self._transform(docs)
        self.seen_ = sorted(set(y.tolist()))
        if len(self.seen_) < 2 or not self.vocabulary_:
            self._constant(y)
            return
        grid = self._grid(searchable=val is not None and len(val) > 0)
        best: tuple[float, float, Any] | None = None
        for C in grid:
            lr = LogisticRegression(C=C, max_iter=cfg.max_iter)
            lr.fit(X, y)
            score = 0.0
            if len(grid) > 1 and val is not None:  # a grid is only searched with validation posts
                y_val = self._class_index(val)
                proba = self._softmax(self._transform(self._docs(val)), lr.coef_, lr.intercept_)
                pred = np.asarray(lr.classes_)[proba.argmax(axis=1)]
                score = float((pred == y_val).mean())
            if best is None or score > best[0]:
                best = (score, C, lr)
        assert best is not None  # _grid returns at least one value
        _, self.C_, lr = best
        self.seen_ = [int(c) for c in lr.classes_]
        self.coef_, self.intercept_ = lr.coef_.astype(np.float64), lr.intercept_.astype(np.float64)

    def predict_proba(self, posts: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        out = np.zeros((len(posts), len(self.classes_)))
        if len(self.seen_) == 1:
            out[:, self.seen_[0]] = 1.0
        elif len(posts):
            out[:, self.seen_] = self._softmax(self._transform(self._docs(posts)), self.coef_, self.intercept_)
        return out

    def _manifest_extra(self) -> dict[str, Any]:
        return {"seen": self.seen_, "C": self.C_}

    def _write_files(self, folder: Path) -> None:
        import torch  # safetensors writes torch tensors; imported here, not on import (``stack`` reads this module)

        save_tensors(
            {
                "idf": torch.from_numpy(self.idf_),
                "coef": torch.from_numpy(self.coef_),
                "intercept": torch.from_numpy(self.intercept_),
            },
            folder / WEIGHTS,
        )
        write_compact_json(folder / VOCAB, self.vocabulary_)

    def _read_files(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.seen_ = [int(i) for i in manifest["seen"]]
        self.C_ = float(manifest["C"])
        weights = load_tensors(folder / WEIGHTS)
        self.idf_, self.coef_, self.intercept_ = (weights[k].numpy() for k in ("idf", "coef", "intercept"))
        self.vocabulary_ = read_json(folder / VOCAB)

    # --- internals -------------------------------------------------------------------------

    def _grid(self, searchable: bool) -> list[float]:
        """The values of C to try: ``C`` when set, ``c_grid`` with validation posts, else its middle value.

        Without validation posts (a user-disjoint split of a handful of users can leave none)
        nothing can choose between the grid's values, so the middle one is used rather than none.
        """
        cfg = self.config
        if cfg.C > 0:
            return [float(cfg.C)]
        grid = sorted(float(c) for c in cfg.c_grid)
        if not grid or grid[0] <= 0:
            raise PostlocError(f"{self.name}: c_grid must hold values > 0 (got {list(cfg.c_grid)}); or give C > 0")
        return grid if searchable else [grid[(len(grid) - 1) // 2]]

    def _docs(self, posts: pd.DataFrame) -> list[list[str]]:
        texts = posts["text"] if "text" in posts else [""] * len(posts)
        tags = frame_hashtags(posts.get("hashtags"), len(posts))
        return [post_tokens(t, h, self.config.ngram_max) for t, h in zip(texts, tags, strict=True)]

    def _transform(self, docs: list[list[str]]):
        """Sublinear TF x IDF, L2-normalised rows (scikit-learn's TfidfVectorizer, recomputed)."""
        from scipy.sparse import csr_matrix

        column = {t: i for i, t in enumerate(self.vocabulary_)}
        rows, cols, vals = [], [], []
        for r, doc in enumerate(docs):
            counts = Counter(column[t] for t in doc if t in column)
            if not counts:
                continue
            idx = np.fromiter(counts.keys(), dtype=np.int64)
            tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64))
            w = tf * self.idf_[idx]
            w /= np.linalg.norm(w)
            rows += [r] * len(idx)
            cols += idx.tolist()
            vals += w.tolist()
        return csr_matrix((vals, (rows, cols)), shape=(len(docs), len(self.vocabulary_)))

    @staticmethod
    def _softmax(X, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
        z = np.asarray(X @ coef.T) + intercept
        if coef.shape[0] == 1:  # scikit-learn's binary case: one row for the positive class
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.c_[1 - p, p]
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def _constant(self, y: np.ndarray) -> None:
        """Degenerate data (one class or no usable token): predict the training frequencies."""
        counts = np.bincount(y, minlength=len(self.classes_)).astype(float)
        self.seen_ = list(range(len(self.classes_)))
        self.coef_ = np.zeros((len(self.classes_), len(self.vocabulary_)))
        with np.errstate(divide="ignore"):
            self.intercept_ = np.where(counts > 0, np.log(counts / counts.sum()), -1e9)
        if len(self.classes_) == 1:  # predict_proba answers 1.0 without the regression
            self.seen_ = [0]

    def _check_fitted(self) -> None:
        super()._check_fitted()
        if not self.seen_:
            raise PostlocError("tfidf-logreg model has no fitted classes")
