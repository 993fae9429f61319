"""Filling the person region so that the background's location cues remain (MRLF Sec. III-B).

The paper cites LaMa; no LaMa weights are packaged for offline use, so postloc offers PatchMatch
(PyPatchMatch, patch_size 3: ~1 s on an 868x600 photo with a small hole, plausible texture; its
default 15 is 10x slower) and OpenCV's Telea (~50 ms, smears). Both run at a reduced working size:
the backbone sees 224x224 pixels, so filling a 12 MP photo at full size would only cost time.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageFilter

from postloc.settings import setting, setting_error
from postloc.vision import deps
from postloc.vision.preprocess import shrink


@dataclass(frozen=True)
class InpaintConfig:
    method: Literal["patchmatch", "telea"] = setting(
        "patchmatch",
        flag="--inpaint",
        help="filling method for --image-noise inpaint (default %(default)s; telea is ~20x faster)",
    )
    patch_size: int = setting(3, help="PatchMatch radius (default %(default)s)")  # PatchMatch patch radius
    dilate: int = 7  # grow the mask by this many pixels (hair, soft edges, halo of the segmentation)
    work_short_side: int = 320  # shorter side the photo is filled at (the backbone crops 224 of 256)
    #: persons smaller than this share are left alone
    min_ratio: float = setting(
        0.01, flag="--inpaint-min-ratio", help="smaller persons are left alone (default %(default)s)"
    )
    telea_radius: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.patch_size, bool) or self.patch_size < 1:
            raise setting_error(self, "patch_size", "must be at least 1", self.patch_size)
        if not 0 <= self.min_ratio <= 1:
            raise setting_error(self, "min_ratio", "must be a number in [0, 1]", self.min_ratio)

    def key(self) -> str:
        size = f"p{self.patch_size}" if self.method == "patchmatch" else f"r{self.telea_radius}"
        return f"{self.method}:{size}:d{self.dilate}:w{self.work_short_side}:s{self.seed}"


def check_available(method: str) -> None:
    """Fail early, before any image is processed, when the method's package is missing."""
    deps.require("patchmatch" if method == "patchmatch" else "cv2")


def inpaint_person(image: Image.Image, mask: np.ndarray, config: InpaintConfig = InpaintConfig()) -> Image.Image:
    """``image`` with the True pixels of ``mask`` (any resolution) filled; returned at the working size."""
    image = _reduce(image.convert("RGB"), config.work_short_side)
    hole = Image.fromarray(mask.astype(np.uint8) * 255).resize(image.size, Image.Resampling.NEAREST)
    if config.dilate > 0:
        hole = hole.filter(ImageFilter.MaxFilter(2 * config.dilate + 1))
    hole_array = np.asarray(hole) > 127
    if not hole_array.any():
        return image
    rgb = np.ascontiguousarray(np.asarray(image))
    if config.method == "patchmatch":
        patchmatch = deps.require("patchmatch")
        patchmatch.set_random_seed(config.seed)
        filled = patchmatch.inpaint(rgb, hole_array.astype(np.uint8) * 255, patch_size=config.patch_size)
    elif config.method == "telea":
        cv2 = deps.require("cv2")
        filled = cv2.inpaint(rgb, hole_array.astype(np.uint8) * 255, config.telea_radius, cv2.INPAINT_TELEA)
    else:
        raise ValueError(f"unknown inpainting method {config.method!r}; use patchmatch or telea")
    return Image.fromarray(np.asarray(filled, dtype=np.uint8))


def thumbnail(before: Image.Image, mask: np.ndarray, after: Image.Image, height: int = 160) -> bytes:
    """A JPEG strip ``before | mask in red | after`` for a person to judge the filling."""

    def fit(im: Image.Image) -> Image.Image:
        w, h = im.size
        return im.convert("RGB").resize((max(1, round(w * height / h)), height), Image.Resampling.BILINEAR)

    left = fit(before)
    red = Image.new("RGB", left.size, (255, 0, 0))
    shown = Image.fromarray(mask.astype(np.uint8) * 255).resize(left.size, Image.Resampling.NEAREST)
    middle = Image.composite(Image.blend(left, red, 0.6), left, shown)
    right = fit(after)
    strip = Image.new("RGB", (left.width + middle.width + right.width + 8, height), (255, 255, 255))
    for x, part in ((0, left), (left.width + 4, middle), (left.width + middle.width + 8, right)):
        strip.paste(part, (x, 0))
    buffer = io.BytesIO()
    strip.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _reduce(image: Image.Image, short_side: int) -> Image.Image:
    """The shorter side down to ``short_side`` (never up)."""
    return shrink(image, short_side / min(image.size), Image.Resampling.LANCZOS)
