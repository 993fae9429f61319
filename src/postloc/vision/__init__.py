"""The image side of postloc: frozen backbones, the portrait ratio, inpainting and the feature cache.

``postloc images PREPARED`` (:func:`postloc.vision.pipeline.extract_images`) runs all of it over a
prepared dataset and writes ``image_features.parquet`` (the contract of :mod:`postloc.data.image_features`).
Optional dependencies (mediapipe, PyPatchMatch, OpenCV) are imported only when used, and the
names below are resolved lazily (PEP 562) so that ``import postloc.vision.decode`` or building the
CLI parser does not import torch (about 0.3 GB and 1-2 s for every `postloc prepare`).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "DEFAULT_BACKBONE": "preprocess",
    "Preprocessing": "preprocess",
    "BackboneSpec": "backbones",
    "FrozenBackbone": "backbones",
    "backbone_spec": "backbones",
    "get_backbone": "backbones",
    "list_backbones": "backbones",
    "register_backbone": "backbones",
    "weights_available": "backbones",
    "DecodeConfig": "decode",
    "decode_image": "decode",
    "InpaintConfig": "inpaint",
    "inpaint_person": "inpaint",
    "ImagesConfig": "pipeline",
    "ImagesResult": "pipeline",
    "extract_images": "pipeline",
    "PersonSegmenter": "portrait",
    "PortraitConfig": "portrait",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
