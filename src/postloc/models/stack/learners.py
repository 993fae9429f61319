"""The base learners of ``stack``: one post representation each, under a multinomial logistic regression.

A learner owns its features (a vocabulary and IDF, or the means and deviations of image
vectors) and the regression's coefficients; it fits with per-post sample weights and returns
log-probabilities over the model's full class list. Everything it keeps is a tensor or a list
of strings, so the model saves to safetensors and JSON, never pickle.

- ``words``: caption words and their bigrams plus ``#hashtag`` tokens, TF-IDF (sublinear).
- ``chars``: character 2-5-grams within word boundaries of caption and hashtags, TF-IDF: robust
  to spelling, inflection, compounds and languages a word vocabulary splits apart (a char
  n-gram regression was the only model that beat the majority class on unseen real tweets).
- ``image``: the post's frozen-backbone image vector, z-scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from postloc.data.image_features import image_dim, image_matrix
from postloc.models.base import ModelInputs
from postloc.models.stack.fits import LOG_FLOOR, Regression, log_proba
from postloc.models.tfidf_logreg import post_tokens
from postloc.text.hashtags import frame_hashtags

__all__ = ["LEARNERS", "LOG_FLOOR", "Learner"]


class Learner:
    """Features of a post and a logistic regression on them; subclasses define the features."""

    kind: ClassVar[str]

    def __init__(self, n_classes: int):
        self.n_classes = n_classes
        self.C = 0.0
        self.seen: list[int] = []  # class indices the regression saw (the columns of coef)
        self.coef = np.zeros((0, 0))
        self.intercept = np.zeros(0)

    # features --------------------------------------------------------------------------------
    @property
    def inputs(self) -> ModelInputs:
        """The parts of a post this learner's features are made of."""
        raise NotImplementedError

    @staticmethod
    def usable(posts: pd.DataFrame) -> bool:
        """Whether the training posts carry this learner's input at all."""
        raise NotImplementedError

    def fit_features(self, posts: pd.DataFrame, config: Any) -> None:
        raise NotImplementedError

    def features(self, posts: pd.DataFrame) -> Any:
        raise NotImplementedError

    def fit_transform(self, posts: pd.DataFrame, config: Any) -> Any:
        """:meth:`fit_features` then :meth:`features` of the same posts (a learner may do both in one pass)."""
        self.fit_features(posts, config)
        return self.features(posts)

    def tensors(self) -> dict[str, np.ndarray]:
        """The feature state to save (besides coef/intercept)."""
        return {}

    def strings(self) -> list[str]:
        """A vocabulary to save (empty: none)."""
        return []

    def restore(self, tensors: dict[str, np.ndarray], strings: list[str], config: Any) -> None:
        """The inverse of :meth:`tensors` and :meth:`strings`."""

    # regression ------------------------------------------------------------------------------
    def set_regression(self, regression: Regression) -> None:
        """Keep a fitted regression (:func:`postloc.models.stack.fits.fit_logreg`) as this learner's."""
        self.C, self.seen = regression.C, regression.seen
        self.coef, self.intercept = regression.coef, regression.intercept

    def log_proba(self, X: Any) -> np.ndarray:
        """``[n, n_classes]`` log-probabilities (classes the regression never saw get :data:`LOG_FLOOR`)."""
        return log_proba(X, Regression(self.coef, self.intercept, self.seen, self.C), self.n_classes)


def _texts(posts: pd.DataFrame) -> list[str]:
    return [t if isinstance(t, str) else "" for t in (posts["text"] if "text" in posts else [""] * len(posts))]


def _identity(tokens: list[str]) -> list[str]:
    return tokens


class _TfidfLearner(Learner):
    """TF-IDF features from a scikit-learn vectorizer, rebuilt on load from its vocabulary and IDF."""

    def __init__(self, n_classes: int):
        super().__init__(n_classes)
        self.vectorizer: Any = None

    @property
    def inputs(self) -> ModelInputs:
        """Both learners' documents are made of the caption and the hashtags."""
        return ModelInputs.reading("text", "hashtags")

    def _analysis(self, config: Any) -> dict[str, Any]:
        """How the learner cuts a document into terms (the vectorizer's analyzer settings)."""
        raise NotImplementedError

    def _vectorizer(self, config: Any, vocabulary: Sequence[str] | None = None) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(
            **self._analysis(config),
            min_df=config.min_df,
            max_features=config.max_features,
            sublinear_tf=True,
            vocabulary=vocabulary,
            dtype=np.float32,  # the regressions run in float32: half the memory of the char n-gram matrix
        )

    def _docs(self, posts: pd.DataFrame) -> list[Any]:
        raise NotImplementedError

    def fit_features(self, posts: pd.DataFrame, config: Any) -> None:
        self.fit_transform(posts, config)

    def fit_transform(self, posts: pd.DataFrame, config: Any) -> Any:
        """Vocabulary, IDF and features in one pass over the posts (char n-grams cut once, not twice)."""
        from scipy.sparse import csr_matrix

        docs = self._docs(posts)
        vectorizer = self._vectorizer(config)
        vectorizer.set_params(min_df=min(config.min_df, max(1, len(docs))))
        try:
            X = vectorizer.fit_transform(docs)
        except ValueError:  # nothing survives min_df: no feature, the regression falls back to the prior
            vectorizer, X = None, csr_matrix((len(docs), 0), dtype=np.float32)
        self.vectorizer = vectorizer
        return X

    def features(self, posts: pd.DataFrame) -> Any:
        from scipy.sparse import csr_matrix

        if self.vectorizer is None:
            return csr_matrix((len(posts), 0))
        return self.vectorizer.transform(self._docs(posts))

    def tensors(self) -> dict[str, np.ndarray]:
        return {"idf": np.zeros(0) if self.vectorizer is None else self.vectorizer.idf_.astype(np.float64)}

    def strings(self) -> list[str]:
        if self.vectorizer is None:
            return []
        return [t for t, _ in sorted(self.vectorizer.vocabulary_.items(), key=lambda kv: kv[1])]

    def restore(self, tensors: dict[str, np.ndarray], strings: list[str], config: Any) -> None:
        if not strings:
            self.vectorizer = None
            return
        vectorizer = self._vectorizer(config, vocabulary=strings)
        vectorizer.idf_ = tensors["idf"]
        self.vectorizer = vectorizer


class Words(_TfidfLearner):
    kind = "words"

    @staticmethod
    def usable(posts: pd.DataFrame) -> bool:
        return any(_texts(posts)) or any(len(t) for t in frame_hashtags(posts.get("hashtags"), len(posts)))

    def _analysis(self, config: Any) -> dict[str, Any]:
        return {"analyzer": _identity}

    def _docs(self, posts: pd.DataFrame) -> list[Any]:
        tags = frame_hashtags(posts.get("hashtags"), len(posts))
        return [post_tokens(t, h, 2) for t, h in zip(_texts(posts), tags, strict=True)]


class Chars(_TfidfLearner):
    kind = "chars"

    @staticmethod
    def usable(posts: pd.DataFrame) -> bool:
        """Only with captions: hashtags are already whole normalised tokens, which ``words`` covers
        (on the tag-only Dresden set chars cost far more fit time than words and added nothing)."""
        return any(_texts(posts))

    def _analysis(self, config: Any) -> dict[str, Any]:
        return {"analyzer": "char_wb", "ngram_range": tuple(config.char_ngrams), "lowercase": True}

    def _docs(self, posts: pd.DataFrame) -> list[Any]:
        tags = frame_hashtags(posts.get("hashtags"), len(posts))
        return [f"{t} {' '.join(h)}".strip() for t, h in zip(_texts(posts), tags, strict=True)]


class Image(Learner):
    kind = "image"

    def __init__(self, n_classes: int):
        super().__init__(n_classes)
        self.mean = np.zeros(0)
        self.std = np.zeros(0)

    @property
    def inputs(self) -> ModelInputs:
        """The photo's vector, as long as the training vectors whose means it keeps."""
        return ModelInputs.reading(image_dim=len(self.mean))

    @staticmethod
    def usable(posts: pd.DataFrame) -> bool:
        return image_dim(posts) > 0

    def fit_features(self, posts: pd.DataFrame, config: Any) -> None:
        vectors, present = image_matrix(posts, image_dim(posts))
        seen = vectors[present].astype(np.float64)
        self.mean = seen.mean(axis=0)
        self.std = np.maximum(seen.std(axis=0), 1e-6)

    def features(self, posts: pd.DataFrame) -> Any:
        vectors, present = image_matrix(posts, len(self.mean))
        X = (vectors.astype(np.float64) - self.mean) / self.std
        X[~present] = 0.0  # no photo: the regression's intercept, i.e. its prior
        return X

    def tensors(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "std": self.std}

    def restore(self, tensors: dict[str, np.ndarray], strings: list[str], config: Any) -> None:
        self.mean, self.std = tensors["mean"], tensors["std"]


LEARNERS: dict[str, type[Learner]] = {cls.kind: cls for cls in (Words, Chars, Image)}
