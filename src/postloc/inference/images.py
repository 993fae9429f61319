"""Uploaded photos: sniff, check the pixel count, decode, and (when possible) featurize.

The model was trained on feature vectors of a frozen backbone (``postloc images`` writes the
backbone's name into ``<prepared>/image_summary.json``). :func:`featurizer_for_run` rebuilds that
backbone when its weights are on this machine and the dimension matches the model; otherwise the
photo is validated but reported as unused, with the reason. The featurizer is an injected callable
(``bytes -> vector``) so tests and other pipelines can plug in their own.
"""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

#: ``decoded RGB PIL image -> feature vector`` (float32, the model's image_dim).
ImageFeaturizer = Callable[[Any], np.ndarray]


class ImageRejected(Exception):
    """An uploaded photo that cannot be used; ``status`` is the HTTP code to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class FeaturizerInfo:
    featurizer: ImageFeaturizer | None
    reason: str  # why images are (not) used, shown to clients
    backbone: str | None = None


def decode_upload(data: bytes, max_pixels: int):
    """An RGB PIL image from upload bytes, checking the pixel count from the header before decoding."""
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
    except Image.DecompressionBombError:  # over twice Pillow's own limit: still "too many pixels", not corrupt
        raise ImageRejected(413, f"the photo has more than {Image.MAX_IMAGE_PIXELS} pixels; "
                                 f"the limit is {max_pixels} pixels") from None
    except Exception:  # noqa: BLE001 - UnidentifiedImageError, OSError, SyntaxError...: the client's file
        raise ImageRejected(400, "the photo could not be decoded (corrupt or unsupported image)") from None
    if width * height > max_pixels:
        raise ImageRejected(413, f"the photo has {width}x{height} pixels; the limit is {max_pixels} pixels")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            return image.convert("RGB")
    except Exception:  # noqa: BLE001 - any decoder failure is the client's corrupt file, not our bug
        raise ImageRejected(400, "the photo could not be decoded (corrupt or truncated image)") from None


def featurizer_for_run(run_dir: str | Path, image_dim: int) -> FeaturizerInfo:
    """The backbone featurizer the run's image features were computed with, if it can be rebuilt here."""
    if image_dim <= 0:
        return FeaturizerInfo(None, "this model was trained without images; the photo is not used")
    run = Path(run_dir)
    summary = None
    try:
        config = json.loads((run / "config.json").read_text())
        data = Path(config.get("data") or "")
        if (data / "image_summary.json").exists():
            summary = json.loads((data / "image_summary.json").read_text())
    except (OSError, ValueError):
        summary = None
    if not summary or not summary.get("backbone"):
        return FeaturizerInfo(None, "the run does not record which image backbone made its features "
                                    "(no image_summary.json in its prepared data); the photo is not used")
    name = str(summary["backbone"])
    try:
        from postloc.vision import backbone_spec, get_backbone, weights_available

        spec = backbone_spec(name)
    except Exception:  # noqa: BLE001
        return FeaturizerInfo(None, f"image backbone {name!r} is unknown here; the photo is not used", name)
    if spec.dim != image_dim:
        return FeaturizerInfo(None, f"backbone {name} gives {spec.dim} features but the model expects {image_dim}; "
                                    "the photo is not used", name)
    if not weights_available(name):
        return FeaturizerInfo(None, f"weights of image backbone {name} are not on this machine; the photo is not used",
                              name)
    lock = threading.Lock()
    state: dict[str, Any] = {}

    def featurize(image) -> np.ndarray:
        with lock:  # one backbone, loaded on first use, used by one thread at a time
            if "net" not in state:
                state["net"] = get_backbone(name)
            return state["net"].embed([image])[0].astype(np.float32)

    return FeaturizerInfo(featurize, f"features from backbone {name} (portrait filtering/inpainting of "
                                     "training is not applied to uploads)", name)
