"""Which methods each study runs, and which inputs they need (so missing ones become n/a rows)."""

from __future__ import annotations

from postloc.experiments.config import Method
from postloc.models.mrlf.config import FUSIONS

IMAGE_HEADS = ("resnet50", "resnet101", "densenet121", "vgg16")

#: tiny settings used by ``--quick`` (tests); keys are model names
QUICK_PARAMS = {
    "mrlf": {"filters": 16, "heads": 2, "hidden": 16, "char_dim": 8, "word_dim": 8, "max_text_chars": 60,
             "max_hashtag_chars": 40},
    "mrlf-plus": {"filters": 16, "heads": 2, "hidden": 16, "char_dim": 8, "word_dim": 8, "max_text_chars": 60,
                  "max_hashtag_chars": 40},
    "deepgeo": {"char_dim": 8, "hidden": 8, "attention": 8, "max_chars": 40},
    "loctwi": {"buckets": 1009, "dim": 8},
    "tagvisor": {"n_estimators": 5},
    **{name: {"hidden": 8} for name in IMAGE_HEADS},
}


def table2_methods() -> list[Method]:
    """Table II: the paper's baselines, the references it lacks, and MRLF."""
    methods = [
        Method("majority", "majority"),
        Method("tfidf-logreg (text+hashtags)", "tfidf-logreg", needs=("text|hashtags",)),
        Method("TagVisor (random forest, hashtags)", "tagvisor", needs=("hashtags",)),
        Method("DeepGeo (char BiLSTM + attention)", "deepgeo", needs=("text|hashtags",), max_epochs=10),
        Method("LocTwi (subword n-grams)", "loctwi", needs=("text|hashtags",)),
    ]
    methods += [Method(name, name, needs=("image",)) for name in IMAGE_HEADS]
    methods += [Method("knn-image (cosine, k={k})", "knn-image", needs=("image",)),
                Method("MRLF (paper)", "mrlf", needs=("text|hashtags|image",)),
                Method("mrlf-plus (MRLF x tfidf-logreg late fusion; ours, not the paper's)", "mrlf-plus",
                       needs=("text|hashtags",))]
    return methods


ABLATION = (("text",), ("hashtags",), ("image",), ("text", "hashtags"), ("text", "image"), ("hashtags", "image"),
            ("text", "hashtags", "image"))


def fig2_methods() -> list[Method]:
    """Fig. 2: MRLF on every modality subset (fusion 'mrlf' where both its inputs are on, else concat)."""
    out = []
    for subset in ABLATION:
        fusion = "mrlf" if {"text", "hashtags"} <= set(subset) else "concat"
        out.append(Method("MRLF " + "+".join(subset), "mrlf", {"modalities": list(subset), "fusion": fusion},
                          needs=subset))
    return out


def fig3_methods() -> list[Method]:
    """Fig. 3: the fusion variants with every modality the data has."""
    return [Method(f"MRLF fusion {name}", "mrlf", {"fusion": name}, needs=tuple(pair or ()))
            for name, pair in FUSIONS.items()]


def missing_needs(method: Method, available: set[str]) -> list[str]:
    """The needs of ``method`` that the data cannot meet (empty: applicable)."""
    return [need for need in method.needs if not set(need.split("|")) & available]
