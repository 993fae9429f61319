"""Which methods each study runs, and which inputs they need (so missing ones become n/a rows).

What a model needs and its ``--quick`` settings are facts of the model, read from its class
(``requires``, ``quick_params``); a study adds only what differs per row (an ablation's
modalities, a fusion variant's pair).
"""

from __future__ import annotations

from typing import Any

from postloc.data.modalities import unmet_needs
from postloc.experiments.config import Method
from postloc.models.mrlf.config import FUSIONS
from postloc.models.registry import get_model

IMAGE_HEADS = ("resnet50", "resnet101", "densenet121", "vgg16")
#: the paper's baselines (and ours, mrlf-plus): the best of them by mean accuracy is the reference
#: of Table II's paired differences
PAPER_BASELINES = ("tfidf-logreg", "tagvisor", "loctwi", "deepgeo", "mrlf-plus")
#: with --folds every cell runs K times: an epoch cap for LocTwi (which early stopping rarely
#: ends before 20 epochs on Dresden) keeps a 5-fold Table II under 20 minutes on 2 loaded cores
#: (DeepGeo keeps its general cap of 10); the report notes each cap (docs/experiments.md)
CV_EPOCH_CAPS = {"loctwi": 20}


def quick_params(model: str) -> dict[str, Any]:
    """The tiny settings ``--quick`` (tests) trains ``model`` with."""
    return dict(get_model(model).quick_params)


def _method(label: str, model: str, **kw: Any) -> Method:
    """A row running ``model`` as is: it needs what the model requires."""
    return Method(label, model, needs=tuple(get_model(model).requires), **kw)


def table2_methods() -> list[Method]:
    """Table II: the paper's baselines, the references it lacks, and MRLF."""
    methods = [
        _method("majority", "majority"),
        _method("tfidf-logreg (text+hashtags)", "tfidf-logreg"),
        _method("TagVisor (random forest, hashtags)", "tagvisor"),
        _method("DeepGeo (char BiLSTM + attention)", "deepgeo", max_epochs=10),
        _method("LocTwi (subword n-grams)", "loctwi"),
    ]
    methods += [_method(name, name) for name in IMAGE_HEADS]
    methods += [
        _method("knn-image (cosine, k={k})", "knn-image"),
        _method("MRLF (paper)", "mrlf"),
        _method("mrlf-plus (MRLF x tfidf-logreg late fusion; ours, not the paper's)", "mrlf-plus"),
        _method("stack (user-weighted per-modality regressions + same-user context; postloc's default)", "stack"),
    ]
    return methods


ABLATION = (
    ("text",),
    ("hashtags",),
    ("image",),
    ("text", "hashtags"),
    ("text", "image"),
    ("hashtags", "image"),
    ("text", "hashtags", "image"),
)


def fig2_methods() -> list[Method]:
    """Fig. 2: MRLF on every modality subset (fusion 'mrlf' where both its inputs are on, else concat)."""
    out = []
    for subset in ABLATION:
        fusion = "mrlf" if {"text", "hashtags"} <= set(subset) else "concat"
        out.append(
            Method("MRLF " + "+".join(subset), "mrlf", {"modalities": list(subset), "fusion": fusion}, needs=subset)
        )
    return out


def fig3_methods() -> list[Method]:
    """Fig. 3: the fusion variants with every modality the data has."""
    return [
        Method(f"MRLF fusion {name}", "mrlf", {"fusion": name}, needs=tuple(pair or ()))
        for name, pair in FUSIONS.items()
    ]


def missing_needs(method: Method, available: set[str]) -> list[str]:
    """The needs of ``method`` that the data cannot meet (empty: applicable)."""
    return unmet_needs(method.needs, available)
