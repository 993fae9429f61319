"""The image side of postloc: frozen backbones, the portrait ratio, inpainting and the feature cache.

``postloc images PREPARED`` (:func:`postloc.vision.pipeline.extract_images`) runs all of it over a
prepared dataset and writes ``image_features.parquet`` (the contract of :mod:`postloc.features`).
Optional dependencies (mediapipe, PyPatchMatch, OpenCV) are imported only when used.
"""

from postloc.vision.backbones import (
    DEFAULT_BACKBONE,
    BackboneSpec,
    FrozenBackbone,
    backbone_spec,
    get_backbone,
    list_backbones,
    register_backbone,
    weights_available,
)
from postloc.vision.decode import DecodeConfig, decode_image
from postloc.vision.inpaint import InpaintConfig, inpaint_person
from postloc.vision.pipeline import ImagesConfig, ImagesResult, extract_images
from postloc.vision.portrait import PersonSegmenter, PortraitConfig
from postloc.vision.preprocess import Preprocessing

__all__ = ["DEFAULT_BACKBONE", "BackboneSpec", "DecodeConfig", "FrozenBackbone", "ImagesConfig", "ImagesResult",
           "InpaintConfig", "PersonSegmenter", "PortraitConfig", "Preprocessing", "backbone_spec", "decode_image",
           "extract_images", "get_backbone", "inpaint_person", "list_backbones", "register_backbone",
           "weights_available"]
