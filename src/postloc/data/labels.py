"""POI labels to class positions: the one label-to-index rule every model, score and report uses.

A model's classes are POI labels (strings) in a fixed order; its probability rows follow that
order. Training, calibration, evaluation and the reports all need a post's label as a position
in it, with the same answer for a label the classes lack (-1: a post of a POI the model never
learned, e.g. one left out of an open-set run) and the same reading of a label that arrives as a
number (``str(label)``, as the prepared table stores them). Written once here, below every layer
that asks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["class_index", "label_indices"]


def class_index(classes: Iterable[Any]) -> dict[str, int]:
    """Each class label (as a string) to its position in ``classes``."""
    return {str(c): i for i, c in enumerate(classes)}


def label_indices(labels: Iterable[Any], classes: Iterable[Any]) -> np.ndarray:
    """Each label's position in ``classes`` as int64; -1 for a label outside them."""
    index = class_index(classes)
    return np.array([index.get(str(label), -1) for label in labels], dtype=np.int64)
