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

from collections.abc import Sequence
from dataclasses import field, fields, make_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from postloc.errors import PostlocError
from postloc.models.base import Estimator, FitOptions, ModelInputs
from postloc.models.mrlf import MRLF, MRLFConfig
from postloc.models.registry import register
from postloc.models.tfidf_logreg import TfidfLogReg

#: the MRLF settings mrlf-plus exposes; their types and defaults are MRLFConfig's
MRLF_FIELDS = (
    "modalities",
    "fusion",
    "filters",
    "heads",
    "hidden",
    "char_dim",
    "word_dim",
    "max_text_chars",
    "max_hashtag_chars",
    "user_weight_power",
    "label_smoothing",
    "geo_smoothing_km",
)


def _check_mrlf_fields(self: Any) -> None:
    """Refuse a bad MRLF setting when the config is made (not when ``fit`` builds the MRLF)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a fusion without its inputs warns again when fit builds the MRLF
        MRLFConfig(**{name: getattr(self, name) for name in MRLF_FIELDS})


#: MRLF's exposed settings plus the mixing weights (MRLF's share, chosen on validation log-loss);
#: the saved ``config`` has exactly these keys
MRLFPlusConfig = make_dataclass(
    "MRLFPlusConfig",
    [(f.name, f.type, field(default=f.default)) for f in fields(MRLFConfig) if f.name in MRLF_FIELDS]
    + [("weights", "tuple[float, ...]", field(default=(0.0, 0.25, 0.5, 0.75, 1.0)))],
    frozen=True,
    namespace={"__post_init__": _check_mrlf_fields},
)
MRLFPlusConfig.__module__ = __name__


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, 1e-12, 1.0))


def _mix(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    z = w * _log(a) + (1 - w) * _log(b)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@register
class MRLFPlus(Estimator):
    name = "mrlf-plus"
    Config = MRLFPlusConfig
    requires = ("text|hashtags",)
    quick_params = MRLF.quick_params

    def __init__(self, config: Any = None, trainer=None):
        super().__init__(config, trainer)
        self.mrlf: Estimator | None = None
        self.linear: Estimator | None = None
        self.weight_ = 0.5

    @property
    def inputs_used(self) -> ModelInputs:
        """What its MRLF reads (the photo too, where trained with it) and its linear model's caption and hashtags."""
        if self.mrlf is None or self.linear is None:
            return ModelInputs.reading()
        return self.mrlf.inputs_used | self.linear.inputs_used

    def _parts(self) -> tuple[Estimator, Estimator]:
        """The fitted MRLF and linear models; before ``fit`` or ``load``, the not-fitted error."""
        if self.mrlf is None or self.linear is None:
            raise PostlocError(f"{self.name} model is not fitted yet; call fit() or load()")
        return self.mrlf, self.linear

    def _mrlf_params(self) -> dict[str, Any]:
        params = {name: getattr(self.config, name) for name in MRLF_FIELDS}
        return {**params, "modalities": list(params["modalities"])}

    def _fit(
        self, train: pd.DataFrame, val: pd.DataFrame | None, *, classes: Sequence[str] | None, options: FitOptions
    ) -> None:
        import warnings

        self.classes_ = self._resolve_classes(train, classes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.mrlf = MRLF(self._mrlf_params(), self.trainer)
        self.mrlf.fit(train, val, classes=self.classes_)
        self.linear = TfidfLogReg({}, self.trainer).fit(train, val, classes=self.classes_)
        if val is not None and len(val):
            y = self._class_index(val)
            ok = y >= 0
            a, b = self.mrlf.predict_proba(val), self.linear.predict_proba(val)
            losses = [(-_log(_mix(a, b, w))[ok, y[ok]].mean(), w) for w in self.config.weights]
            self.weight_ = float(min(losses)[1])

    def predict_proba(self, posts: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        mrlf, linear = self._parts()
        return _mix(mrlf.predict_proba(posts), linear.predict_proba(posts), self.weight_)

    def _manifest_extra(self) -> dict[str, Any]:
        return {"weight": self.weight_}

    def _write_files(self, folder: Path) -> None:
        mrlf, linear = self._parts()
        mrlf.save(folder / "mrlf")
        linear.save(folder / "linear")

    def _read_files(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.weight_ = float(manifest["weight"])
        self.mrlf = MRLF.load(folder / "mrlf")
        self.linear = TfidfLogReg.load(folder / "linear")
