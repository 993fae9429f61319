"""Which inputs a prepared dataset offers (text, hashtags, image) and which a model's needs it cannot meet.

Training refuses a model whose needs the data cannot meet before it writes anything, and the
experiments mark such a method n/a: both ask here, so they agree. A need is written like a
model's ``requires`` entry: ``"image"``, or ``"text|hashtags"`` for either of the two.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from postloc.data.image_features import load_image_features
from postloc.data.prepared import load_prepared


def available_modalities(prepared: str | Path) -> set[str]:
    """Modalities present in the train split: text, hashtags, image (any post having it counts)."""
    data = load_prepared(prepared)
    train = data.split("train")
    found = set()
    if train["text"].fillna("").astype(str).str.len().gt(0).any():
        found.add("text")
    if train["hashtags"].map(lambda v: v is not None and len(v) > 0).any():
        found.add("hashtags")
    features = load_image_features(prepared)
    if features is not None and len(features[0]) and set(features[0]) & set(train["id"].astype(str)):
        found.add("image")
    return found


def unmet_needs(needs: Iterable[str], available: set[str]) -> list[str]:
    """The needs (``"text|hashtags"``: either) that ``available`` cannot meet; empty when all are met."""
    return [need for need in needs if not set(need.split("|")) & available]
