"""What happens to one image file: decode, portrait ratio, drop/inpaint decision, preprocessing.

Runs inside DataLoader worker processes (or in-process with ``workers=0``), so it holds only
plain data and creates the mediapipe models lazily, once per process. It never raises for bad
data: a file that cannot be used comes back with a status from :mod:`postloc.vision.decode`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image

from postloc.vision.decode import OK, DecodeConfig, decode_image
from postloc.vision.inpaint import InpaintConfig, inpaint_person, thumbnail
from postloc.vision.portrait import PersonSegmenter, PortraitConfig
from postloc.vision.preprocess import Preprocessing

NoiseMode = Literal["drop", "inpaint", "keep"]
KEPT, INPAINTED, DROPPED = "kept", "inpainted", "dropped_portrait"


@dataclass(frozen=True)
class WorkSettings:
    """Everything a worker needs (picklable)."""

    noise: NoiseMode
    preprocessing: Preprocessing
    portrait: PortraitConfig
    inpaint: InpaintConfig
    decode: DecodeConfig
    thumbnails: bool = True


@dataclass
class WorkItem:
    path: str
    sha256: str
    ratio: float = math.nan  # known from the cache, else NaN (computed when the mode needs it)
    gate: str = ""


@dataclass
class WorkResult:
    path: str
    sha256: str  # of the bytes decoded now
    item_sha256: str  # of the bytes hashed when planning (differs only if the file changed meanwhile)
    status: str  # kept, inpainted, dropped_portrait, or a decode failure
    note: str = ""
    width: int = 0
    height: int = 0
    ratio: float = math.nan
    gate: str = ""
    ratio_computed: bool = False
    pixels: np.ndarray | None = field(default=None, repr=False)  # (3, H, W) float32 for kept/inpainted
    thumb: bytes | None = field(default=None, repr=False)


def decide(noise: NoiseMode, ratio: float, portrait: PortraitConfig, inpaint: InpaintConfig) -> str:
    """kept / inpainted / dropped_portrait for a known ratio (the paper drops ratio > 0.5)."""
    if noise == "keep":
        return KEPT
    if ratio > portrait.threshold:
        return DROPPED
    if noise == "inpaint" and ratio > inpaint.min_ratio:
        return INPAINTED
    return KEPT


def transform_key(treatment: str, settings: WorkSettings) -> str:
    """The pixel change applied before the backbone, as it enters the feature-cache key.

    Kept images have the same features whichever ``--image-noise`` mode kept them, so switching
    modes only computes what actually differs (the inpainted images).
    """
    if treatment == INPAINTED:
        return f"inpaint:{settings.inpaint.key()}:{settings.portrait.key()}"
    return "none"


_SEGMENTER: dict[PortraitConfig, PersonSegmenter] = {}


def segmenter(config: PortraitConfig) -> PersonSegmenter:
    if config not in _SEGMENTER:
        _SEGMENTER[config] = PersonSegmenter(config)
    return _SEGMENTER[config]


PROCESSING_ERROR = "processing_error"


def process(item: WorkItem, settings: WorkSettings) -> WorkResult:
    """One image, end to end; an unexpected error in a model or filler becomes a status, not a crash."""
    try:
        return _process(item, settings)
    except Exception as error:  # noqa: BLE001 - one odd image must not stop a batch of 100,000
        return WorkResult(
            item.path, item.sha256, item.sha256, PROCESSING_ERROR, f"{type(error).__name__}: {str(error)[:200]}"
        )


@dataclass
class Treatment:
    """What the portrait decision does to one decoded picture (see :func:`treat`)."""

    status: str  # kept, inpainted or dropped_portrait
    image: Image.Image | None  # what the backbone sees; None when dropped
    ratio: float
    gate: str = ""
    ratio_computed: bool = False
    thumb: bytes | None = field(default=None, repr=False)


def treat(image: Image.Image, settings: WorkSettings, ratio: float = math.nan, gate: str = "") -> Treatment:
    """Measure the portrait ratio when it is not known, decide, and inpaint when the decision says so.

    The one place the noise mode touches pixels: ``postloc images`` (through :func:`process`) and
    prediction (:mod:`postloc.inference.images`) both call it, so a photo is treated the same way
    whether it was seen in training or arrives with a new post.
    """
    mask = None
    computed = False
    if settings.noise != "keep" and math.isnan(ratio):
        measured = segmenter(settings.portrait).measure(image)
        ratio, gate, computed, mask = measured.ratio, measured.gate, True, measured.mask
    status = decide(settings.noise, ratio, settings.portrait, settings.inpaint)
    if status == DROPPED:
        return Treatment(status, None, ratio, gate, computed)
    thumb = None
    if status == INPAINTED:
        if mask is None:
            mask = segmenter(settings.portrait).measure(image).mask
        filled = inpaint_person(image, mask, settings.inpaint)
        if settings.thumbnails:
            thumb = thumbnail(image, mask, filled)
        image = filled
    return Treatment(status, image, ratio, gate, computed, thumb)


def _process(item: WorkItem, settings: WorkSettings) -> WorkResult:
    decoded = decode_image(item.path, settings.decode)
    sha = decoded.sha256 or item.sha256
    result = WorkResult(
        item.path, sha, item.sha256, decoded.status, decoded.note, decoded.width, decoded.height, item.ratio, item.gate
    )
    if decoded.status != OK:
        return result
    assert decoded.image is not None  # status OK: decode_image gave the image
    known = item.ratio if sha == item.sha256 else math.nan  # a file changed since planning is measured again
    treated = treat(decoded.image, settings, known, item.gate)
    result.status, result.ratio, result.gate = treated.status, treated.ratio, treated.gate
    result.ratio_computed, result.thumb = treated.ratio_computed, treated.thumb
    if treated.image is not None:
        result.pixels = settings.preprocessing(treated.image)
    return result
